"""The formatter shapes the seed documented, on a real broker with both servers and all
three clients (the async ones on each backend), and JSON numbers that overflow to infinity
refused like Infinity."""

from __future__ import annotations

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, async_servers, close_async, connect_async
from tests.integration.peers import Arith, SyncServerThread
from tests.integration.raw import RawPeer, reply_headers
from tests.shapes import SeedStyle, Static, WithSelf

SHAPES = {"seed-class": SeedStyle, "staticmethods": Static, "instance": WithSelf(),
          "built-in-class": amqprpc.MsgPack}  # fmt: skip
SERVERS = {**async_servers(), "sync-server": SyncServerThread}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("kind", list(SERVERS))
async def test_every_formatter_shape_works_end_to_end(
    broker_url: str, queue_name: str, shape: str, kind: str
) -> None:
    fmt = SHAPES[shape]
    server = SERVERS[kind](broker_url, queue_name, fmt, Arith()).start()
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, fmt) as threadsafe:
            assert threadsafe.call("Arith.Mul", {"A": 6, "B": 7}, timeout=10) == 42
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        with amqprpc.sync.client_codec(connection, queue_name, fmt) as plain:
            assert plain.call("Arith.Echo", ["x", 1.5], timeout=10) == ["x", 1.5]
        connection.close()
        for backend in ASYNC_BACKENDS:
            protocol = await connect_async(backend, broker_url)
            codec = await amqprpc.client_codec(protocol, queue_name, fmt)
            with pytest.raises(amqprpc.RemoteError, match="divide by zero"):
                await codec.call("Arith.Div", {"A": 1, "B": 0}, timeout=10)
            await codec.close()
            await close_async(protocol)
    finally:
        server.stop()


@pytest.mark.parametrize("kind", list(SERVERS))
def test_json_numbers_overflowing_to_infinity_are_refused(
    broker_url: str, queue_name: str, kind: str
) -> None:
    server = SERVERS[kind](broker_url, queue_name, amqprpc.Json, Arith()).start()
    peer = RawPeer(broker_url)
    try:
        properties = pika.BasicProperties(
            reply_to="Arith.Echo", correlation_id=peer.reply_queue, message_id="1"
        )
        peer.publish(queue_name, b'{"A":1e999}', properties)
        props, body = peer.get_reply()
        error = reply_headers(props).get("error")
        assert isinstance(error, str) and "overflows" in error
        assert body == b"{}"
    finally:
        peer.close()
        server.stop()
