"""The async API (on aioamqp and on aiormq) against a real RabbitMQ: results, errors and
names, the request queue's flags, bad requests, unroutable calls, and 10,000 calls at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pika
import pytest

import amqprpc
from amqprpc.aio import AsyncClientCodec, AsyncServerCodec
from tests.backends import close_async, connect_async
from tests.integration.raw import RawPeer, reply_headers


class Server:
    """The service of the seed example, plus helpers for the tests."""

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> dict[str, int]:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def echo(self, arg: Any) -> Any:
        return arg

    async def aecho(self, arg: Any) -> Any:
        await asyncio.sleep(0)
        return arg

    def get_user(self, uid: int) -> dict[str, Any]:
        return {"id": uid}

    def _secret(self, arg: Any) -> str:
        return "never"


@pytest.fixture(params=[amqprpc.Json, amqprpc.MsgPack], ids=["json", "msgpack"])
def formatter(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def served(amqp: Any, queue_name: str, formatter: Any) -> AsyncIterator[AsyncServerCodec]:
    server = await amqprpc.server_codec(amqp, queue_name, formatter)
    server.register(Server())
    await server.started()
    yield server
    await server.close()


@pytest.fixture
async def client(
    amqp: Any, served: AsyncServerCodec, formatter: Any
) -> AsyncIterator[AsyncClientCodec]:
    codec = await amqprpc.client_codec(amqp, served.queue, formatter, timeout=10)
    yield codec
    await codec.close()


async def test_seed_snippet_works_as_written(
    broker_url: str, queue_name: str, aio_backend: str
) -> None:
    protocol = await connect_async(aio_backend, broker_url)
    codec = await amqprpc.server_codec(protocol, queue_name, amqprpc.Json)
    codec.register(Server())
    ccodec = await amqprpc.client_codec(protocol, queue_name, amqprpc.Json)
    client = ccodec.client("Server")
    result = await client.Mul({"A": 2, "B": 3})
    assert result == 6
    await ccodec.close()
    await codec.close()
    await close_async(protocol)
    assert amqprpc.server_codec is amqprpc.aio.server_codec
    assert amqprpc.client_codec is amqprpc.aio.client_codec


async def test_results_errors_and_names(client: AsyncClientCodec) -> None:
    proxy = client.client("Server")
    assert await proxy.Mul({"A": 6, "B": 7}) == 42
    assert await proxy.mul({"A": -3, "B": 5}) == -15
    assert await proxy.Div({"A": 7, "B": 2}) == {"Quo": 3, "Rem": 1}
    assert await proxy.get_user(5) == {"id": 5}
    assert await client.call("Server.GetUser", 6) == {"id": 6}
    assert await client.call("Server.get_user", 7) == {"id": 7}
    nested = {
        "s": "héllo",
        "i": 2**40,
        "f": 1.5,
        "b": True,
        "n": None,
        "l": [1, "x"],
        "m": {"k": 1},
    }
    assert await proxy.Echo(nested) == nested
    assert await proxy.Aecho([1, 2, 3]) == [1, 2, 3]
    with pytest.raises(amqprpc.RemoteError) as err:
        await proxy.Div({"A": 1, "B": 0})
    assert str(err.value) == "divide by zero"
    assert err.value.remote_type == "ZeroDivisionError"
    with pytest.raises(amqprpc.RemoteError, match=r"^rpc: can't find method Server.Nope$"):
        await proxy.Nope(1)
    with pytest.raises(amqprpc.RemoteError, match=r"^rpc: can't find service Nope.Mul$"):
        await client.call("Nope.Mul", 1)
    with pytest.raises(amqprpc.RemoteError, match=r"^rpc: service/method request ill-formed: Mul$"):
        await client.call("Mul", 1)
    with pytest.raises(amqprpc.RemoteError, match=r"^rpc: can't find method Server._secret$"):
        await client.call("Server._secret", 1)
    with pytest.raises(amqprpc.RemoteError) as err:
        await proxy.Mul("not a dict")  # wrong argument type: an error reply, server carries on
    assert err.value.remote_type == "TypeError"
    assert await proxy.Mul({"A": 1, "B": 1}) == 1
    assert client.pending == 0


async def test_request_queue_declared_exactly_as_go_does(
    served: AsyncServerCodec, broker_url: str
) -> None:
    def declare(**flags: Any) -> str:
        with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
            try:
                conn.channel().queue_declare(served.queue, **flags)
            except pika.exceptions.ChannelClosedByBroker as exc:
                return f"{exc.reply_code}"
        return "ok"

    assert await asyncio.to_thread(declare) == "ok"  # Go's flags: all false, no arguments
    assert await asyncio.to_thread(declare, durable=True) == "406"
    assert await asyncio.to_thread(declare, auto_delete=True) == "406"


async def test_bad_requests_never_stop_the_server(
    served: AsyncServerCodec, client: AsyncClientCodec, broker_url: str, formatter: Any
) -> None:
    peer = await asyncio.to_thread(RawPeer, broker_url)
    P = pika.BasicProperties
    q = served.queue
    try:
        garbage = b"\xc1\xff garbage"
        cases = [  # (body, properties, expected error text prefix or None for success)
            (
                garbage,
                P(correlation_id=peer.reply_queue, reply_to="Server.Mul", message_id="1"),
                "undecodable",
            ),
            (
                b"{}",
                P(correlation_id=peer.reply_queue, message_id="2"),
                "rpc: service/method request ill-formed: ",
            ),
            (
                b"{}",
                P(
                    correlation_id=peer.reply_queue,
                    reply_to="Server.mul.__globals__",
                    message_id="3",
                ),
                "rpc: can't find service Server.mul.__globals__",
            ),
            (
                b"{}",
                P(correlation_id=peer.reply_queue, reply_to="Server.__class__", message_id="4"),
                "rpc: can't find method Server.__class__",
            ),
            (
                formatter().pack(None),
                P(correlation_id=peer.reply_queue, reply_to="Server.Echo", message_id="x\u00e9"),
                None,
            ),
        ]
        for body, props, expected in cases:
            await asyncio.to_thread(peer.publish, q, body, props)
            rprops, rbody = await asyncio.to_thread(peer.get_reply)
            assert rprops.message_id == props.message_id  # copied verbatim
            if expected is None:
                assert not reply_headers(rprops) and formatter().unpack(rbody) is None
            else:
                assert rprops.headers["error"].startswith(expected), rprops.headers
        # No correlation_id: cannot be answered; dropped, and the server keeps serving.
        await asyncio.to_thread(peer.publish, q, b"{}", P(reply_to="Server.Mul", message_id="9"))
        # No message_id: still answered, without one.
        await asyncio.to_thread(
            peer.publish,
            q,
            formatter().pack({"A": 2, "B": 2}),
            P(correlation_id=peer.reply_queue, reply_to="Server.Mul"),
        )
        rprops, body = await asyncio.to_thread(peer.get_reply)
        assert rprops.message_id is None and formatter().unpack(body) == 4
    finally:
        await asyncio.to_thread(peer.close)
    assert await client.client("Server").Mul({"A": 3, "B": 3}) == 9


async def test_unroutable_when_no_queue(amqp: Any) -> None:
    codec = await amqprpc.client_codec(amqp, "amqprpc-test-no-such-queue", amqprpc.Json, timeout=5)
    with pytest.raises(amqprpc.Unroutable, match="no-such-queue"):
        await codec.call("S.M", 1)
    assert codec.pending == 0
    await codec.close()


async def test_ten_thousand_concurrent_calls_each_get_their_own_result(
    client: AsyncClientCodec,
) -> None:
    proxy = client.client("Server")
    results = await asyncio.gather(*(proxy.Echo({"n": i}) for i in range(10_000)))
    assert results == [{"n": i} for i in range(10_000)]
    assert client.pending == 0
