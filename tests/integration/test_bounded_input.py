"""Bounded input on a real broker: the 16 MiB default limit, and the largest hostile body
each format permits leaves a server (in a process of its own, so that its memory can be
read) answering at once, with its memory back near its baseline."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.protocol
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS
from tests.integration.faults_helpers import Holder
from tests.integration.raw import RawPeer, queue_counts

LIMIT = 16 * 1024 * 1024
ROOT = Path(__file__).parents[2]


def test_the_default_limit_is_rabbitmq_4s_max_message_size() -> None:
    assert amqprpc.protocol.DEFAULT_MAX_BODY_SIZE == LIMIT


async def test_an_oversized_argument_fails_only_its_call_async(
    amqp: Any, queue_name: str, broker_url: str
) -> None:
    server = await amqprpc.server_codec(amqp, queue_name, amqprpc.Json)
    server.register(Holder())
    await server.started()
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json)
    with pytest.raises(amqprpc.MessageTooLarge, match=str(LIMIT)):
        await codec.call("Holder.Echo", "x" * LIMIT)  # plus its quotes: over by 2 bytes
    assert await codec.call("Holder.Echo", "small") == "small"
    assert codec.pending == 0
    for closable in (codec, server):
        await closable.close()


def test_an_oversized_argument_fails_only_its_call_sync(
    broker_url: str, queue_name: str
) -> None:
    server = amqprpc.sync.server_codec(broker_url, queue_name, amqprpc.Json)
    server.register(Holder())
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    assert server.wait_started(10)
    try:
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        with (
            amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json) as plain,
            amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as threadsafe,
        ):
            for codec in (plain, threadsafe):
                with pytest.raises(amqprpc.MessageTooLarge, match=str(LIMIT)):
                    codec.call("Holder.Echo", "x" * LIMIT)
                assert queue_counts(broker_url, queue_name) == (0, 1)  # nothing was sent
                assert codec.call("Holder.Echo", "small") == "small"
        connection.close()
    finally:
        server.stop()
        serving.join(10)


# -- the largest permitted hostile bodies -----------------------------------------------------


def dense_body(fmt: str) -> bytes:
    """An array of empty maps filling the limit: refused by the container guard (unguarded,
    10 MiB of them took a server from 25 MB to 812 MB and stalled it for 4 s)."""
    if fmt == "msgpack":
        count = LIMIT - 5
        return b"\xdd" + count.to_bytes(4, "big") + b"\x80" * count
    return b"[" + b",".join([b"{}"] * ((LIMIT - 1) // 3)) + b"]"


def hostile_count(fmt: str) -> int:
    """How many strings the hostile body of `fmt` holds."""
    return (LIMIT - 5) // 3 if fmt == "msgpack" else (LIMIT - 1) // 5


def hostile_body(fmt: str) -> bytes:
    """As many two-character strings as fit in the limit: the worst amplification a body that
    passes the container guard can have (about 20 times its size once decoded)."""
    count = hostile_count(fmt)
    if fmt == "msgpack":
        return b"\xdd" + count.to_bytes(4, "big") + b"\xa2ab" * count
    return b"[" + b",".join([b'"ab"'] * count) + b"]"


@pytest.fixture(params=["sync", *(f"aio-{backend}" for backend in ASYNC_BACKENDS)])
def served(
    request: pytest.FixtureRequest, broker_url: str, queue_name: str, formatter_name: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.served", broker_url, queue_name,
         formatter_name, request.param],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc, queue_name
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(20) == 0


@pytest.fixture(params=["json", "msgpack"])
def formatter_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["strings", "containers"])
def test_the_largest_hostile_body_leaves_the_server_answering(
    served: tuple[subprocess.Popen[str], str], broker_url: str, formatter_name: str, shape: str
) -> None:
    _, queue = served
    fmt: Any = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}[formatter_name]
    with amqprpc.sync.client_codec(broker_url, queue, fmt, timeout=60) as codec:
        for _ in range(20):  # warm up: pools, buffers
            codec.call("Probe.Echo", list(range(100)))
        baseline = codec.call("Probe.Rss")
        body = (hostile_body if shape == "strings" else dense_body)(formatter_name)
        assert len(body) <= LIMIT
        peer = RawPeer(broker_url)
        try:
            properties = pika.BasicProperties(
                reply_to="Probe.Size", correlation_id=peer.reply_queue, message_id="1"
            )
            peer.publish(queue, body, properties)
            props, reply = peer.get_reply(timeout=60)
            error = (props.headers or {}).get("error")
            if shape == "strings":  # served: the worst a permitted body can do
                assert not error, props.headers
                assert fmt.unpack(reply) == hostile_count(formatter_name)
            else:
                assert "containers" in error
        finally:
            peer.close()
        start = time.monotonic()
        assert codec.call("Probe.Echo", "normal") == "normal"
        assert time.monotonic() - start < 1.0
        after = codec.call("Probe.Rss")
    assert after - baseline < 50 * 1024 * 1024, (baseline, after)


def test_the_hostile_body_is_within_the_limit_and_passes_the_guard() -> None:
    for fmt, formatter in (("json", amqprpc.Json), ("msgpack", amqprpc.MsgPack)):
        body = hostile_body(fmt)
        assert LIMIT - 8 <= len(body) <= LIMIT
        decoded: Any = formatter.unpack(body)
        assert decoded[:2] == ["ab", "ab"]
        del decoded
