"""A list of URLs (a cluster's nodes) where the sync API takes one: connecting tries them in
order and takes the first that answers."""

from __future__ import annotations

import socket
import threading

import pytest

import amqprpc
import amqprpc.sync
from tests.integration.peers import Arith


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_the_first_node_that_answers_serves_and_is_called(
    broker_url: str, queue_name: str
) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{closed_port()}/"
    server = amqprpc.sync.server_codec([dead, broker_url], queue_name, amqprpc.Json)
    server.register(Arith())
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        assert server.wait_started(10)
        with amqprpc.sync.client_codec([dead, broker_url], queue_name, amqprpc.Json) as codec:
            assert codec.call("Arith.Mul", {"A": 6, "B": 7}, timeout=10) == 42
    finally:
        server.stop()
        serving.join(10)


def test_when_no_node_answers_the_error_names_them_all() -> None:
    ports = [closed_port(), closed_port()]
    urls = [f"amqp://guest:guest@127.0.0.1:{port}/" for port in ports]
    with amqprpc.sync.client_codec(urls, "q", amqprpc.Json) as codec:
        with pytest.raises(amqprpc.ConnectionLost) as info:
            codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=10)
    assert all(f"127.0.0.1:{port}" in str(info.value) for port in ports)


def test_an_empty_list_is_a_usage_error() -> None:
    with pytest.raises(amqprpc.UsageError, match="non-empty list"):
        amqprpc.sync.client_codec([], "q", amqprpc.Json)
