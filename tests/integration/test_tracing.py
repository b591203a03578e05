"""OpenTelemetry spans on the real broker: every Python client kind (sync on a caller's
connection, thread-safe sync, async on each backend) against every Python server kind (sync,
async on each backend), with the SDK's in-memory exporter (tests/otel.py). The server span is
the child of the client span, current while its handler runs (plain handlers in a thread pool,
`async def` ones on a loop), so a call made while serving is its child."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, close_async, connect_async
from tests.integration.peers import Arith, AsyncServerThread, SyncServerThread
from tests.integration.raw import delete_queue, wait_until
from tests.otel import Spans, spans_fixture  # noqa: F401 - the `spans` fixture

pytestmark = pytest.mark.broker

SERVERS: dict[str, Any] = {
    **{
        f"aio-{backend}": functools.partial(AsyncServerThread, backend=backend)
        for backend in ASYNC_BACKENDS
    },
    "sync": SyncServerThread,
}
CLIENTS = ["sync", "threadsafe", *(f"aio-{backend}" for backend in ASYNC_BACKENDS)]


class Traced(Arith):
    """Arith, plus handlers that make a call of their own to `inner` (another queue)."""

    def __init__(self, url: str, inner: str, backend: str) -> None:
        super().__init__()
        self.url, self.inner, self.backend = url, inner, backend
        self.current: list[Any] = []

    def nested(self, arg: int) -> int:
        self.current.append(trace.get_current_span().get_span_context())
        with amqprpc.sync.client_codec(self.url, self.inner, amqprpc.Json, timeout=10) as codec:
            return int(codec.call("Arith.Mul", {"A": arg, "B": 2}))

    async def anested(self, arg: int) -> int:
        self.current.append(trace.get_current_span().get_span_context())
        connection = await connect_async(self.backend, self.url)
        try:
            async with await amqprpc.client_codec(
                connection, self.inner, amqprpc.Json, timeout=10
            ) as codec:
                return int(await codec.call("Arith.Mul", {"A": arg, "B": 2}))
        finally:
            await close_async(connection)


@pytest.fixture
def inner(broker_url: str) -> Iterator[str]:
    """A second request queue, served by a sync server: the target of the nested calls."""
    name = f"amqprpc-test-inner-{uuid.uuid4().hex[:12]}"
    peer = SyncServerThread(broker_url, name, amqprpc.Json, Arith()).start()
    yield name
    peer.stop()
    delete_queue(broker_url, name)


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, broker_url: str, queue_name: str, inner: str) -> Any:
    kind = request.param
    backend = kind.removeprefix("aio-") if kind.startswith("aio-") else ASYNC_BACKENDS[0]
    service = Traced(broker_url, inner, backend)
    peer = SERVERS[kind](broker_url, queue_name, amqprpc.Json, service).start()
    peer.service = service
    yield peer
    peer.stop()


def make_calls(client: str, url: str, queue: str, calls: list[tuple[str, Any, float]]) -> list[Any]:
    """Make `calls` (method, arg, timeout) one after the other with a client of kind `client`;
    returns each result, or the exception it raised."""
    if client.startswith("aio-"):
        return asyncio.run(_async_calls(client.removeprefix("aio-"), url, queue, calls))
    if client == "sync":
        connection = pika.BlockingConnection(pika.URLParameters(url))
        codec: Any = amqprpc.sync.client_codec(connection, queue, amqprpc.Json)
    else:
        connection, codec = None, amqprpc.sync.client_codec(url, queue, amqprpc.Json)
    outcomes = []
    try:
        for method, arg, timeout in calls:
            try:
                outcomes.append(codec.call(method, arg, timeout=timeout))
            except amqprpc.RPCError as exc:
                outcomes.append(exc)
    finally:
        codec.close()
        if connection is not None:
            connection.close()
    return outcomes


async def _async_calls(
    backend: str, url: str, queue: str, calls: list[tuple[str, Any, float]]
) -> list[Any]:
    connection = await connect_async(backend, url)
    outcomes = []
    try:
        async with await amqprpc.client_codec(connection, queue, amqprpc.Json) as codec:
            for method, arg, timeout in calls:
                try:
                    outcomes.append(await codec.call(method, arg, timeout=timeout))
                except amqprpc.RPCError as exc:
                    outcomes.append(exc)
    finally:
        await close_async(connection)
    return outcomes


def pair(spans: Spans, name: str) -> tuple[Any, Any]:
    """The one CLIENT and the one SERVER span called `name`."""
    named = spans.named(name)
    (client,) = [s for s in named if s.kind is SpanKind.CLIENT]
    (server,) = [s for s in named if s.kind is SpanKind.SERVER]
    return client, server


@pytest.mark.parametrize("client", CLIENTS)
def test_spans_of_every_client_and_server(
    spans: Spans, client: str, server: Any, broker_url: str, queue_name: str, inner: str
) -> None:
    calls = [("Traced.Mul", {"A": 6, "B": 7}, 10.0), ("Traced.Div", {"A": 1, "B": 0}, 10.0),
             ("Traced.Nested", 5, 10.0), ("Traced.Anested", 6, 10.0)]  # fmt: skip
    outcomes = make_calls(client, broker_url, queue_name, calls)
    assert outcomes[0] == 42
    assert isinstance(outcomes[1], amqprpc.RemoteError)
    assert outcomes[2:] == [10, 12]

    mul_client, mul_server = pair(spans, "Traced/Mul")
    assert mul_server.parent.span_id == mul_client.context.span_id
    assert mul_server.context.trace_id == mul_client.context.trace_id
    for span in (mul_client, mul_server):
        assert span.attributes["rpc.system"] == "amqprpc"
        assert span.attributes["rpc.service"] == "Traced"
        assert span.attributes["rpc.method"] == "Mul"
        assert span.attributes["messaging.system"] == "rabbitmq"
        assert span.attributes["messaging.destination.name"] == queue_name
        assert span.attributes["messaging.message.id"].isdecimal()
        assert span.status.status_code is StatusCode.UNSET
    assert (
        mul_client.attributes["messaging.message.conversation_id"]
        == mul_server.attributes["messaging.message.conversation_id"]
    )
    assert not any("amqprpc.reply." in s.name for s in spans.get_finished_spans())

    div_client, div_server = pair(spans, "Traced/Div")
    assert div_server.parent.span_id == div_client.context.span_id
    assert div_server.status.status_code is StatusCode.ERROR
    assert div_server.attributes["error.type"] == "ZeroDivisionError"
    assert div_client.status.status_code is StatusCode.ERROR
    assert div_client.attributes["error.type"] == "amqprpc.RemoteError"

    # A call made while serving (from a plain handler in a thread, and from an `async def`
    # one) is a child of the server span, in the same trace.
    nested = spans.named("Arith/Mul")
    assert len(nested) == 4
    for method in ("Nested", "Anested"):
        outer_client, outer_server = pair(spans, f"Traced/{method}")
        assert outer_server.parent.span_id == outer_client.context.span_id
        assert outer_server.context in server.service.current  # current while it ran
        (inner_client,) = [s for s in nested if s.parent.span_id == outer_server.context.span_id]
        assert inner_client.kind is SpanKind.CLIENT
        assert inner_client.context.trace_id == outer_client.context.trace_id
        assert inner_client.attributes["messaging.destination.name"] == inner
        (inner_server,) = [s for s in nested if s.parent.span_id == inner_client.context.span_id]
        assert inner_server.kind is SpanKind.SERVER
        assert inner_server.context.trace_id == outer_client.context.trace_id


@pytest.mark.parametrize("client", CLIENTS)
def test_a_timeout_fails_the_client_span(
    spans: Spans, client: str, broker_url: str, queue_name: str
) -> None:
    peer = SyncServerThread(broker_url, queue_name, amqprpc.Json, Arith()).start()
    try:
        (outcome,) = make_calls(
            client, broker_url, queue_name, [("Arith.Sleep", {"Ms": 1500}, 0.3)]
        )
        assert isinstance(outcome, amqprpc.RPCTimeout)
        (span,) = spans.named("Arith/Sleep")
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "amqprpc.RPCTimeout"
        assert span.events[0].name == "exception"
        # The handler goes on to its end (the server cancels none); its reply comes too late.
        assert wait_until(lambda: len(spans.named("Arith/Sleep")) == 2)
        server = next(s for s in spans.named("Arith/Sleep") if s.kind is SpanKind.SERVER)
        assert server.parent.span_id == span.context.span_id
        assert server.status.status_code is StatusCode.UNSET
    finally:
        peer.stop()


def test_an_unroutable_call_fails_the_client_span(spans: Spans, broker_url: str) -> None:
    queue = f"amqprpc-test-nowhere-{uuid.uuid4().hex[:12]}"
    (outcome,) = make_calls("threadsafe", broker_url, queue, [("Arith.Mul", 1, 5.0)])
    assert isinstance(outcome, amqprpc.Unroutable)
    (span,) = spans.get_finished_spans()
    assert span.attributes["error.type"] == "amqprpc.Unroutable"
    assert span.status.status_code is StatusCode.ERROR
