"""Tracing through a Go hop: a Go peer ignores the trace context headers and sends none. A
Python client's call to the Go server has its CLIENT span and no SERVER span (and the Go server
answers as ever); a Go client's request to a Python server has a SERVER span that starts a new
trace."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS
from tests.integration.peers import Arith, AsyncServerThread, SyncServerThread
from tests.integration.raw import queue_counts, wait_until
from tests.interop.test_interop import GoServer
from tests.otel import Spans, spans_fixture  # noqa: F401 - the `spans` fixture

SERVERS: dict[str, Any] = {
    **{
        f"aio-{backend}": functools.partial(AsyncServerThread, backend=backend)
        for backend in ASYNC_BACKENDS
    },
    "sync": SyncServerThread,
}


def test_python_client_to_go_server(
    spans: Spans, go_peer: Path, broker_url: str, queue_name: str
) -> None:
    server = GoServer(go_peer, broker_url, queue_name, "json")
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=10) as codec:
            assert codec.call("Arith.Mul", {"A": 6, "B": 7}) == 42
            with pytest.raises(amqprpc.RemoteError):
                codec.call("Arith.Div", {"A": 1, "B": 0})
            assert codec.call("Arith.Mul", {"A": 2, "B": 3}) == 6  # the server still serves
    finally:
        server.stop()
    finished = spans.get_finished_spans()
    assert [s.kind for s in finished] == [SpanKind.CLIENT] * 3
    assert [s.name for s in finished] == ["Arith/Mul", "Arith/Div", "Arith/Mul"]
    assert finished[1].status.status_code is StatusCode.ERROR
    assert all(s.parent is None for s in finished)


@pytest.mark.parametrize("kind", list(SERVERS))
def test_go_client_to_python_server(
    spans: Spans, go_peer: Path, broker_url: str, queue_name: str, kind: str
) -> None:
    server = SERVERS[kind](broker_url, queue_name, amqprpc.Json, Arith()).start()
    try:
        assert wait_until(lambda: queue_counts(broker_url, queue_name)[1] >= 1)
        proc = subprocess.run(
            [str(go_peer), "-mode", "client", "-url", broker_url, "-queue", queue_name,
             "-format", "json", "-n", "20", "-c", "1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1])["failures"] is None
    finally:
        server.stop()
    finished = spans.get_finished_spans()
    assert len(finished) >= 20
    assert {s.kind for s in finished} == {SpanKind.SERVER}
    assert all(s.parent is None for s in finished)  # each a root: the Go client sent none
    assert len({s.context.trace_id for s in finished}) == len(finished)
    muls = spans.named("Arith/Mul")
    assert len(muls) >= 20
    assert muls[0].attributes["messaging.destination.name"] == queue_name
    assert spans.named("amqprpc")[0].attributes["rpc.method"] == "_OTHER"  # Arith.Nope
