"""The Django example: a view calling a remote Arith.mul through the thread-safe client
configured in settings, driven by Django's test client against a live RPC server."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import amqprpc
from tests.integration.peers import SyncServerThread
from tests.integration.raw import delete_queue

SITE = Path(__file__).resolve().parents[2] / "examples" / "django_app"
# Django reads its settings (and makes settings.RPC) once per process: one broker only.
pytestmark = pytest.mark.parametrize("broker_url", ["rabbitmq3"], indirect=True)


class Arith:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]


@pytest.fixture
def django_client(broker_url: str, queue_name: str) -> Iterator[Any]:
    os.environ["AMQPRPC_URL"] = broker_url
    os.environ["AMQPRPC_QUEUE"] = queue_name
    os.environ["DJANGO_SETTINGS_MODULE"] = "rpcsite.settings"
    sys.path.insert(0, str(SITE))
    import django
    from django.conf import settings
    from django.test import Client

    django.setup()
    yield Client()
    settings.RPC.close()
    sys.path.remove(str(SITE))


def test_view_calls_the_remote_service(
    django_client: Any, broker_url: str, queue_name: str
) -> None:
    server = SyncServerThread(broker_url, queue_name, amqprpc.Json, Arith()).start()
    try:
        response = django_client.get("/mul", {"a": 6, "b": 7})
        assert response.status_code == 200
        assert response.json() == {"result": 42}
        assert django_client.get("/mul", {"a": "x"}).status_code == 400

        answers: dict[tuple[int, int], Any] = {}
        lock = threading.Lock()

        def browse(n: int) -> None:
            from django.test import Client

            client = Client()
            for i in range(10):
                reply = client.get("/mul", {"a": n, "b": i})
                with lock:
                    answers[(n, i)] = (reply.status_code, reply.json())

        threads = [threading.Thread(target=browse, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answers == {(n, i): (200, {"result": n * i}) for n in range(24) for i in range(10)}
    finally:
        server.stop()
    # With the service gone (its queue deleted), the view reports the failure at once.
    delete_queue(broker_url, queue_name)
    assert django_client.get("/mul", {"a": 1, "b": 1}).status_code == 503
