"""Tracing in the core (amqprpc/_tracing.py), with the OpenTelemetry SDK's in-memory exporter:
one CLIENT span per call from `call_op`, one SERVER span per request from `ServerProtocol`, the
trace context in the request's headers, and the server span current while its handler runs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import amqprpc
from amqprpc import Registry
from amqprpc._events import CallDone, Delivery, Outcome, WaitFor
from amqprpc._ops import call_op
from amqprpc._tracing import error_type, span_name, trace_context
from tests.core.helpers import REQUEST_QUEUE, WALL_NOW, LoopbackPair, wire
from tests.otel import Spans, spans_fixture  # noqa: F401 - the `spans` fixture

TRACEPARENT = "00-0af7651916cd43dd8420211a4e8dfd03-b7ad6b7169203331-01"


class Arith:
    def __init__(self) -> None:
        self.current: list[Any] = []
        self.inner: LoopbackPair | None = None

    def mul(self, args: dict[str, int]) -> int:
        self.current.append(trace.get_current_span())
        if self.inner is not None:  # a call made while serving
            assert call(self.inner, "Inner.Echo", 1) == 1
        return args["A"] * args["B"]

    async def amul(self, args: dict[str, int]) -> int:
        self.current.append(trace.get_current_span())
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> int:
        return args["A"] // args["B"]


class Oops(Exception):
    pass


class Inner:
    def echo(self, arg: Any) -> Any:
        return arg


def pair_for(service: object) -> LoopbackPair:
    registry = Registry()
    registry.register(service)
    return LoopbackPair(registry=registry)


def call(pair: LoopbackPair, method: str, arg: object, **options: Any) -> Any:
    """One call through `call_op`, as every client makes it, over the loopback pair."""
    op = call_op(
        pair.client, method, arg, now=pair.now, token=method, trace=trace_context(), **options
    )
    publish = next(op)
    wait = op.send(None)
    assert isinstance(wait, WaitFor)
    done = pair.route(publish)
    assert isinstance(done, CallDone)
    try:
        op.send(done)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("call_op did not end")


def one(spans: Spans, kind: SpanKind) -> Any:
    (span,) = [s for s in spans.get_finished_spans() if s.kind is kind]
    return span


def test_a_call_makes_a_client_span_and_a_server_span_its_child(spans: Spans) -> None:
    service = Arith()
    pair = pair_for(service)
    assert call(pair, "Arith.Mul", {"A": 6, "B": 7}) == 42
    client, server = one(spans, SpanKind.CLIENT), one(spans, SpanKind.SERVER)
    assert client.name == server.name == "Arith/Mul"
    assert client.parent is None
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    assert server.parent.is_remote
    assert client.status.status_code is server.status.status_code is StatusCode.UNSET
    common = {
        "rpc.system": "amqprpc", "rpc.service": "Arith", "rpc.method": "Mul",
        "messaging.system": "rabbitmq", "messaging.destination.name": REQUEST_QUEUE,
        "messaging.message.id": "0",  # the first call's number
        "messaging.message.conversation_id": pair.client.reply_queue,
    }  # fmt: skip
    assert dict(client.attributes) == common
    assert dict(server.attributes) == {
        k: v for k, v in common.items() if k != "messaging.destination.name"
    }
    # The handler ran with the server span current.
    assert service.current[0].get_span_context() == server.context


def test_the_request_carries_traceparent_and_the_deadline(spans: Spans) -> None:
    pair = pair_for(Arith())
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 2}, now=pair.now, token="t",
                 trace=trace_context(), wall=WALL_NOW)  # fmt: skip
    publish = next(op)
    headers = wire(publish.properties, publish.body).headers
    assert headers is not None
    assert set(headers) == {"traceparent", "amqprpc-deadline"}
    op.close()
    (client,) = spans.get_finished_spans()
    version, trace_id, span_id, flags = str(headers["traceparent"]).split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == client.context.trace_id
    assert int(span_id, 16) == client.context.span_id
    assert client.attributes["error.type"] == "GeneratorExit"  # the caller stopped waiting


def test_an_async_handler_runs_with_the_server_span_current(spans: Spans) -> None:
    service = Arith()
    pair = pair_for(service)
    assert call(pair, "Arith.Amul", {"A": 2, "B": 3}) == 6
    server = one(spans, SpanKind.SERVER)
    assert server.name == "Arith/Amul"
    assert service.current[0].get_span_context() == server.context
    assert trace.get_current_span() is trace.INVALID_SPAN  # left again


def test_a_call_made_while_serving_is_a_child_of_the_server_span(spans: Spans) -> None:
    service = Arith()
    service.inner = pair_for(Inner())
    pair = pair_for(service)
    assert call(pair, "Arith.Mul", {"A": 2, "B": 2}) == 4
    outer = next(s for s in spans.named("Arith/Mul") if s.kind is SpanKind.SERVER)
    client = next(s for s in spans.named("Inner/Echo") if s.kind is SpanKind.CLIENT)
    server = next(s for s in spans.named("Inner/Echo") if s.kind is SpanKind.SERVER)
    assert client.parent.span_id == outer.context.span_id
    assert server.parent.span_id == client.context.span_id
    assert len(spans.get_finished_spans()) == 4
    assert len({s.context.trace_id for s in spans.get_finished_spans()}) == 1


def test_a_handler_exception_fails_both_spans(spans: Spans) -> None:
    pair = pair_for(Arith())
    with pytest.raises(amqprpc.RemoteError):
        call(pair, "Arith.Div", {"A": 1, "B": 0})
    client, server = one(spans, SpanKind.CLIENT), one(spans, SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["error.type"] == "ZeroDivisionError"
    (event,) = server.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ZeroDivisionError"
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes["error.type"] == "amqprpc.RemoteError"
    assert client.events[0].attributes["exception.message"] == "integer division or modulo by zero"


def test_a_timeout_fails_the_client_span(spans: Spans) -> None:
    pair = pair_for(Arith())
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 2}, now=pair.now, token="t",
                 timeout=1.0, trace=trace_context())  # fmt: skip
    next(op)  # published; no server answers
    op.send(None)
    (done,) = pair.client.expire(pair.now + 2)
    with pytest.raises(amqprpc.RPCTimeout):
        op.send(done)
    (client,) = spans.get_finished_spans()
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes["error.type"] == "amqprpc.RPCTimeout"
    assert "no reply within" in client.status.description


def test_an_unroutable_call_fails_the_client_span(spans: Spans) -> None:
    pair = pair_for(Arith())
    pair.client.request_queue = "nowhere"
    with pytest.raises(amqprpc.Unroutable):
        call(pair, "Arith.Mul", {"A": 1, "B": 2})
    (client,) = spans.get_finished_spans()
    assert client.attributes["error.type"] == "amqprpc.Unroutable"
    assert client.attributes["messaging.destination.name"] == "nowhere"


def test_an_unknown_method_has_a_server_span_of_no_method_name(spans: Spans) -> None:
    pair = pair_for(Arith())
    with pytest.raises(amqprpc.RemoteError):
        call(pair, "Arith.Nope", 1)
    server = one(spans, SpanKind.SERVER)
    assert server.name == "amqprpc"  # never the name the caller sent: names stay few
    assert server.attributes["rpc.method"] == "_OTHER"
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["error.type"] == "_OTHER"
    assert one(spans, SpanKind.CLIENT).name == "Arith/Nope"


def test_a_request_past_its_deadline_ends_its_span_without_a_reply(spans: Spans) -> None:
    pair = pair_for(Arith())
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 2}, now=pair.now, token="t",
                 trace=trace_context(), wall=WALL_NOW - 60, timeout=1.0)  # fmt: skip
    served = pair.serve(next(op))
    assert served.replies == []
    assert pair.server.stats.expired == 1
    server = one(spans, SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["error.type"] == "amqprpc.DeadlineExceeded"
    op.close()


def test_a_request_without_trace_headers_starts_a_new_trace(spans: Spans) -> None:
    # As a Go client sends it: no headers at all.
    pair = pair_for(Arith())
    started = pair.start("Arith.Mul", {"A": 3, "B": 3})
    assert started.publish.properties.headers is None
    pair.route(started.publish)
    server = one(spans, SpanKind.SERVER)
    assert server.parent is None
    assert server.name == "Arith/Mul"


def test_trace_headers_arriving_as_bytes_are_read(spans: Spans) -> None:
    # Some client libraries hand longstr header values over as bytes.
    pair = pair_for(Arith())
    publish = pair.start("Arith.Mul", {"A": 3, "B": 3}).publish
    publish.properties.headers = {"traceparent": TRACEPARENT.encode()}
    delivery = Delivery(properties=publish.properties, body=publish.body, delivery_tag=1)
    received = pair.server.receive(delivery)
    assert received.invoke is not None
    assert spans.get_finished_spans() == ()  # open until its reply is made
    pair.server.finish(received.invoke, Outcome(value=9))
    server = one(spans, SpanKind.SERVER)
    assert server.parent.trace_id == 0x0AF7651916CD43DD8420211A4E8DFD03
    assert server.parent.span_id == 0xB7AD6B7169203331


def test_names_and_error_types() -> None:
    assert span_name("Arith.Mul") == "Arith/Mul"
    assert span_name("a.b.C") == "a.b/C"
    assert span_name("Plain") == "Plain"
    assert error_type(amqprpc.RPCTimeout("x")) == "amqprpc.RPCTimeout"
    assert error_type(ValueError("x")) == "ValueError"
    assert error_type(Oops()) == "tests.core.test_tracing.Oops"


NO_PROVIDER = """
import sys
import opentelemetry.trace
import amqprpc
from amqprpc._tracing import trace_context
from tests.core.helpers import LoopbackPair
assert trace_context() is None, "no provider: tracing is off"
pair = LoopbackPair(registry=amqprpc.Registry())
started = pair.start("Arith.Mul", 1)
assert started.publish.properties.headers is None
from opentelemetry.sdk.trace import TracerProvider
opentelemetry.trace.set_tracer_provider(TracerProvider())
assert trace_context() is not None, "a provider set after import amqprpc counts"
print("ok")
"""


def test_no_provider_means_no_tracing_until_one_is_set() -> None:
    result = subprocess.run([sys.executable, "-c", NO_PROVIDER], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.stdout == "ok\n", result.stderr


NOT_IMPORTED = """
import sys
import amqprpc
from amqprpc._ops import call_op
from amqprpc._tracing import trace_context
from tests.core.helpers import LoopbackPair
assert trace_context() is None
registry = amqprpc.Registry()
registry.register(lambda x: x, name="Echo")
pair = LoopbackPair(registry=registry)
op = call_op(pair.client, "Echo", 1, now=pair.now, token="t", trace=trace_context())
pair.serve(next(op))
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "loaded"
print("ok")
"""


def test_calls_and_requests_never_load_opentelemetry() -> None:
    result = subprocess.run([sys.executable, "-c", NOT_IMPORTED], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.stdout == "ok\n", result.stderr


def test_a_request_answered_on_the_spot_ends_its_span_with_the_reply(spans: Spans) -> None:
    pair = pair_for(Arith())
    publish = pair.start("Arith.Mul", {"A": 1, "B": 2}).publish
    publish.body = b"{not json"
    served = pair.serve(publish)
    assert served.reply.properties.headers["error_type"] == "ProtocolViolation"
    server = one(spans, SpanKind.SERVER)
    assert server.name == "Arith/Mul"
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["error.type"] == "ProtocolViolation"


@pytest.mark.parametrize("value", ["garbage", 42, b"\xff\xfe", ""])
def test_a_malformed_traceparent_starts_a_new_trace(spans: Spans, value: object) -> None:
    pair = pair_for(Arith())
    publish = pair.start("Arith.Mul", {"A": 2, "B": 2}).publish
    publish.properties.headers = {"traceparent": value}
    delivery = Delivery(properties=publish.properties, body=publish.body, delivery_tag=1)
    received = pair.server.receive(delivery)
    assert received.invoke is not None
    pair.server.finish(received.invoke, Outcome(value=4))
    server = one(spans, SpanKind.SERVER)
    assert server.parent is None
    assert server.status.status_code is StatusCode.UNSET
