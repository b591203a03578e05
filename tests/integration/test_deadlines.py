"""A call's deadline covers the whole call, connecting included, on every client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pika
import pytest

import amqprpc
import amqprpc.sync


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no AMQP handshake)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_thread_safe_call_against_a_silent_socket_ends_by_its_deadline(silent_port: int) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{silent_port}/"
    with amqprpc.sync.client_codec(url, "q", amqprpc.Json) as codec:
        started = time.monotonic()
        with pytest.raises(amqprpc.RPCTimeout, match=r"Svc.Call: no reply within 1 s"):
            codec.call("Svc.Call", 1, timeout=1)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 1.2
        # Several callers waiting for the same connection all end by their own deadlines.
        started = time.monotonic()
        futures = [codec.call_async("Svc.Call", i, timeout=0.5) for i in range(5)]
        for future in futures:
            with pytest.raises(amqprpc.RPCTimeout):
                future.result(5)
        assert time.monotonic() - started < 0.8


def test_thread_safe_call_to_a_closed_port_names_the_cause(broker_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens
    codec = amqprpc.sync.client_codec(f"amqp://guest:guest@127.0.0.1:{port}/", "q", amqprpc.Json)
    started = time.monotonic()
    with pytest.raises(amqprpc.ConnectionLost, match=f"127.0.0.1:{port}"):
        codec.call("Svc.Call", 1, timeout=5)
    assert time.monotonic() - started < 2
    codec.close()


def test_caller_connection_deadline_counts_from_the_call(broker_url: str, queue_name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    server = amqprpc.sync.server_codec(connection, queue_name, amqprpc.Json)  # declares only
    codec = amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json)
    started = time.monotonic()
    with pytest.raises(amqprpc.RPCTimeout, match=r"no reply within 0\.3 s"):
        codec.call("Svc.Call", 1, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 0.8
    codec.close()
    server.close()
    connection.close()
