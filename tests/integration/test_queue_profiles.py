"""Queue profiles (`declare=`) on RabbitMQ 4.0 nodes, one of them configured as 4.3 is by
default (transient non-exclusive queues denied): the Go declaration fails there with a
BrokerError that says what to do, and "durable", "quorum" and "passive" serve all three
clients (the async one on each backend) through both servers (the async one on each)."""

from __future__ import annotations

import asyncio
import uuid

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, async_servers, close_async, connect_async
from tests.brokers import PrivateBroker
from tests.integration.peers import Arith, SyncServerThread
from tests.integration.raw import RawPeer, reply_headers

pytestmark = pytest.mark.rabbitmq4

SERVERS = {**async_servers(), "sync-server": SyncServerThread}


def new_queue() -> str:
    return f"amqprpc-test-{uuid.uuid4().hex[:12]}"


async def every_client_calls(url: str, queue: str) -> None:
    with amqprpc.sync.client_codec(url, queue, amqprpc.Json) as threadsafe:
        assert threadsafe.call("Arith.Mul", {"A": 6, "B": 7}, timeout=10) == 42
    connection = pika.BlockingConnection(pika.URLParameters(url))
    with amqprpc.sync.client_codec(connection, queue, amqprpc.Json) as plain:
        assert plain.call("Arith.Mul", {"A": 2, "B": 3}, timeout=10) == 6
    connection.close()
    for backend in ASYNC_BACKENDS:
        protocol = await connect_async(backend, url)
        codec = await amqprpc.client_codec(protocol, queue, amqprpc.Json)
        assert await codec.call("Arith.Mul", {"A": 4, "B": 5}, timeout=10) == 20
        await codec.close()
        await close_async(protocol)


def queue_type(node: PrivateBroker, queue: str) -> tuple[str, str]:
    for line in node.ctl("list_queues", "name", "type", "durable", "-q").splitlines():
        fields = line.split()
        if fields and fields[0] == queue:
            return fields[1], fields[2]
    raise AssertionError(f"no queue {queue!r}")


async def test_the_go_declaration_on_4_3_fails_with_advice(
    rabbitmq43: PrivateBroker, aio_backend: str
) -> None:
    protocol = await connect_async(aio_backend, rabbitmq43.url)
    try:
        with pytest.raises(amqprpc.BrokerError) as info:
            await amqprpc.server_codec(protocol, new_queue(), amqprpc.Json)
    finally:
        await close_async(protocol)
    assert info.value.reply_code == 541
    text = str(info.value)
    assert "deprecated_features.permit.transient_nonexcl_queues = true" in text
    assert "declare='durable'" in text
    with pytest.raises(amqprpc.BrokerError, match="declare='durable'") as sync_info:
        amqprpc.sync.server_codec(rabbitmq43.url, new_queue(), amqprpc.Json)
    assert sync_info.value.reply_code == 541


@pytest.mark.parametrize(("declare", "kind_of_queue"), [("durable", "classic"),
                                                    ("quorum", "quorum")])  # fmt: skip
@pytest.mark.parametrize("kind", list(SERVERS))
async def test_durable_and_quorum_request_queues_serve_on_4_3(
    rabbitmq43: PrivateBroker, kind: str, declare: str, kind_of_queue: str
) -> None:
    queue = new_queue()
    server = SERVERS[kind](rabbitmq43.url, queue, amqprpc.Json, Arith(), declare=declare)
    await asyncio.to_thread(server.start)
    try:
        await every_client_calls(rabbitmq43.url, queue)
        found = await asyncio.to_thread(queue_type, rabbitmq43, queue)
        assert found == (kind_of_queue, "true")
    finally:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(rabbitmq43.ctl, "delete_queue", queue)


@pytest.mark.parametrize("kind", list(SERVERS))
async def test_passive_never_creates_and_serves_what_exists(
    rabbitmq43: PrivateBroker, kind: str
) -> None:
    queue = new_queue()
    with pytest.raises(amqprpc.BrokerError, match="never creates it") as info:
        await asyncio.to_thread(
            SERVERS[kind](rabbitmq43.url, queue, amqprpc.Json, Arith(), declare="passive").start
        )
    assert info.value.reply_code == 404
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq43.url))
    connection.channel().queue_declare(queue, durable=True)  # the operator's tooling
    connection.close()
    server = SERVERS[kind](rabbitmq43.url, queue, amqprpc.Json, Arith(), declare="passive")
    await asyncio.to_thread(server.start)
    try:
        await every_client_calls(rabbitmq43.url, queue)
    finally:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(rabbitmq43.ctl, "delete_queue", queue)


def test_peers_that_declare_differently_get_a_clear_406(rabbitmq4: PrivateBroker) -> None:
    queue = new_queue()
    first = SyncServerThread(rabbitmq4.url, queue, amqprpc.Json, Arith(), declare="durable")
    first.start()
    try:
        with pytest.raises(amqprpc.BrokerError, match="must declare it alike") as info:
            amqprpc.sync.server_codec(rabbitmq4.url, queue, amqprpc.Json)  # "go"
        assert info.value.reply_code == 406
    finally:
        first.stop()
        rabbitmq4.ctl("delete_queue", queue)


def test_an_unknown_profile_is_refused_before_connecting() -> None:
    nowhere = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens: the check comes first
    with pytest.raises(amqprpc.UsageError, match="declare must be one of"):
        amqprpc.sync.server_codec(nowhere, "q", amqprpc.Json, declare="lazy")  # type: ignore[arg-type]


@pytest.mark.parametrize("requeues", [3, 1])
@pytest.mark.parametrize("kind", list(SERVERS))
def test_a_request_that_keeps_coming_back_is_answered_not_run(
    rabbitmq4: PrivateBroker, kind: str, requeues: int
) -> None:
    # Quorum queues count deliveries (x-delivery-count). A request requeued again and again,
    # as when it crashes every server that takes it, gets an error reply once its count passes
    # max_redeliveries; one requeued less often still runs.
    queue = new_queue()
    peer = RawPeer(rabbitmq4.url)
    try:
        peer.channel.confirm_delivery()  # each publish is in the queue once it returns
        peer.channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        properties = pika.BasicProperties(
            reply_to="Arith.Echo", correlation_id=peer.reply_queue, message_id="1"
        )
        peer.publish(queue, b'"x"', properties)
        for _ in range(requeues):  # each return counts one delivery
            method, _, _ = peer.channel.basic_get(queue)
            assert method is not None
            peer.channel.basic_reject(method.delivery_tag, requeue=True)
        server = SERVERS[kind](rabbitmq4.url, queue, amqprpc.Json, Arith(), declare="quorum",
                               max_redeliveries=2)  # fmt: skip
        server.start()
        try:
            props, body = peer.get_reply(timeout=10)
        finally:
            server.stop()
        headers = reply_headers(props)
        if requeues > 2:
            assert headers["error_type"] == "TooManyDeliveries"
            assert f"after {requeues} deliveries" in str(headers["error"])
            assert server.server.stats.poison == 1
        else:
            assert (headers, body) == ({}, b'"x"')
            assert server.server.stats.poison == 0
    finally:
        peer.close()
        rabbitmq4.ctl("delete_queue", queue)
