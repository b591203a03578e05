"""Go and Python on a broker configured as RabbitMQ 4.3 is by default (transient
non-exclusive queues denied): go-amqprpc's declaration is refused there, and with both sides
declaring durable request queues (Go: goamqprpc.Options{Durable: true}; Python:
declare="durable") every client reaches every server."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.brokers import PrivateBroker
from tests.integration.raw import queue_counts, wait_until
from tests.interop.test_interop import KINDS, client_cell, start_server

pytestmark = pytest.mark.rabbitmq4


def test_go_amqprpcs_declaration_is_refused(go_peer: Path, rabbitmq43: PrivateBroker) -> None:
    queue = f"amqprpc-test-{uuid.uuid4().hex[:12]}"
    proc = subprocess.run(
        [str(go_peer), "-mode", "server", "-url", rabbitmq43.url, "-queue", queue],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "transient_nonexcl_queues" in proc.stderr


@pytest.mark.parametrize("server_kind", KINDS)
@pytest.mark.parametrize("client_kind", KINDS)
def test_durable_matrix_cell(
    go_peer: Path, rabbitmq43: PrivateBroker, client_kind: str, server_kind: str
) -> None:
    url, queue = rabbitmq43.url, f"amqprpc-test-{uuid.uuid4().hex[:12]}"
    server = start_server(server_kind, go_peer, url, queue, "json", declare="durable")
    try:
        assert wait_until(lambda: queue_counts(url, queue)[1] >= 1)
        rate = client_cell(client_kind, go_peer, url, queue, "json", declare="durable")
        assert rate > 0
    finally:
        server.stop()
        rabbitmq43.ctl("delete_queue", queue)
