"""The async API given URLs (on aiormq): a client that connects on its first call, fails the
calls in flight when its connection goes and connects again on the next call; amqps://; and
connection errors that name their cause (refused, the user, the virtual host), never a password.

Connections go through a fault proxy (tests/faults.py) so that a test can cut them and count
them, leaving the shared broker untouched.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import amqprpc
import amqprpc.aio
from amqprpc.aio._open import url_backend
from tests.brokers import PrivateBroker
from tests.faults import TcpProxy


@pytest.fixture(autouse=True)
def quiet_aiormq() -> Iterator[None]:
    # aiormq logs failed connection attempts at ERROR on its own: these tests make them.
    aiormq_log = logging.getLogger("aiormq")
    level = aiormq_log.level
    aiormq_log.setLevel(logging.CRITICAL)
    yield
    aiormq_log.setLevel(level)


class Gated:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    async def hold(self, arg: object) -> object:
        self.entered.set()
        await self.gate.wait()
        return arg


@pytest.fixture
def proxy(broker_url: str) -> Iterator[TcpProxy]:
    p = TcpProxy(broker_url)
    yield p
    p.close()


def test_urls_connect_through_aiormq() -> None:
    assert url_backend() == "aiormq"


async def test_a_url_client_connects_on_first_use_and_again_after_a_loss(
    broker_url: str, queue_name: str, proxy: TcpProxy
) -> None:
    service = Gated()
    server = await amqprpc.aio.server_codec(broker_url, queue_name, amqprpc.Json)
    server.register(service, name="Gated")
    await server.started()
    client = await amqprpc.aio.client_codec(proxy.url, queue_name, amqprpc.Json, timeout=10)
    try:
        assert proxy.accepted == 0  # nothing until the first call
        results = await asyncio.gather(
            *(client.call("Gated.Mul", {"A": i, "B": 3}) for i in range(20))
        )
        assert results == [3 * i for i in range(20)]
        assert proxy.accepted == 1  # one connection for every call that waited for it
        first_reply_queue = client.reply_queue

        held = asyncio.ensure_future(client.call("Gated.Hold", "held"))
        await asyncio.wait_for(service.entered.wait(), 10)
        assert proxy.cut() == 1
        with pytest.raises(amqprpc.ConnectionLost):
            await asyncio.wait_for(held, 10)
        service.gate.set()

        assert await client.call("Gated.Mul", {"A": 6, "B": 7}) == 42  # connected again
        assert proxy.accepted == 2
        assert client.reply_queue != first_reply_queue
        assert client.pending == 0
    finally:
        await client.close()
        await server.close()
    with pytest.raises(amqprpc.ConnectionLost, match="closed"):
        await client.call("Gated.Mul", {"A": 1, "B": 1})


async def test_a_url_clients_deadline_covers_connecting() -> None:
    # A listener that accepts and never speaks AMQP: the call ends by its own timeout.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        client = await amqprpc.aio.client_codec(
            f"amqp://guest:guest@127.0.0.1:{port}/", "q", amqprpc.Json
        )
        began = time.monotonic()
        with pytest.raises(amqprpc.RPCTimeout, match="not connected within 1 s"):
            await client.call("Svc.Call", 1, timeout=1)
        assert 0.9 <= time.monotonic() - began < 2.0
        waiting = asyncio.ensure_future(client.call("Svc.Call", 2, timeout=30))
        for _ in range(100):  # yield until the call waits for the connection
            if client._connecting is not None:
                break
            await asyncio.sleep(0)
        assert client._connecting is not None and not client._connecting.done()
        await client.close()
        with pytest.raises(amqprpc.ConnectionLost, match="closed"):
            await asyncio.wait_for(waiting, 5)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def _with(broker_url: str, *, password: str | None = None, vhost: str | None = None) -> str:
    scheme, rest = broker_url.split("//", 1)
    creds, _, host = rest.partition("@")
    user, _, secret = creds.partition(":")
    host = host.split("/", 1)[0]
    return f"{scheme}//{user}:{password or secret}@{host}/{vhost or ''}"


async def test_connection_errors_name_their_cause_never_the_password(broker_url: str) -> None:
    refused = f"amqp://guest:guest@127.0.0.1:{_free_port()}/"
    client = await amqprpc.aio.client_codec(refused, "q", amqprpc.Json)
    with pytest.raises(amqprpc.ConnectionLost, match=r"127\.0\.0\.1:\d+: connection refused"):
        await client.call("Svc.Call", 1, timeout=5)
    with pytest.raises(amqprpc.ConnectionLost, match="connection refused"):
        await amqprpc.aio.server_codec(refused, "q", amqprpc.Json)

    secret = f"not-the-password-{uuid.uuid4().hex}"
    client = await amqprpc.aio.client_codec(_with(broker_url, password=secret), "q", amqprpc.Json)
    with pytest.raises(amqprpc.BrokerError) as refused_user:
        await client.call("Svc.Call", 1, timeout=5)
    assert refused_user.value.reply_code == 403
    user = broker_url.split("//", 1)[1].partition(":")[0]
    assert f"user {user!r}" in str(refused_user.value)
    assert secret not in str(refused_user.value)

    vhost = f"no-such-vhost-{uuid.uuid4().hex[:6]}"
    with pytest.raises(amqprpc.BrokerError) as no_vhost:
        await amqprpc.aio.server_codec(_with(broker_url, vhost=vhost), "q", amqprpc.Json)
    assert no_vhost.value.reply_code == 530
    assert repr(vhost) in str(no_vhost.value)
    await client.close()


@pytest.mark.slow
async def test_url_client_and_server_over_amqps(private_broker: PrivateBroker) -> None:
    url = f"{private_broker.tls_url}?cafile={private_broker.ca_file}"
    queue = f"amqprpc-tls-{uuid.uuid4().hex[:12]}"
    server = await amqprpc.aio.server_codec(url, queue, amqprpc.MsgPack)
    server.register(Gated(), name="Gated")
    await server.started()
    client = await amqprpc.aio.client_codec(url, queue, amqprpc.MsgPack, timeout=10)
    assert await client.call("Gated.Mul", {"A": 6, "B": 7}) == 42
    await client.close()
    await server.close()
    with pytest.raises(amqprpc.UsageError, match="No such file"):
        missing = f"{private_broker.tls_url}?cafile=/nonexistent/ca.pem"
        await amqprpc.aio.server_codec(missing, queue, amqprpc.MsgPack)


async def test_a_url_client_serves_many_threads_loops_independently(
    broker_url: str, queue_name: str
) -> None:
    # Each event loop gets its own codec (asyncio objects belong to one loop): a codec made in
    # another thread's loop works there, alongside this one.
    server = await amqprpc.aio.server_codec(broker_url, queue_name, amqprpc.Json)
    server.register(Gated(), name="Gated")
    await server.started()
    results: list[Any] = []

    async def elsewhere() -> None:
        client = await amqprpc.aio.client_codec(broker_url, queue_name, amqprpc.Json)
        results.append(await client.call("Gated.Mul", {"A": 2, "B": 5}))
        await client.close()

    thread = threading.Thread(target=asyncio.run, args=(elsewhere(),))
    thread.start()
    await asyncio.to_thread(thread.join, 30)
    assert results == [10]
    await server.close()
