"""Test helpers for the broker-free tier: a client core and a server core joined in memory.

Modelled on h11's `tests/helpers.py` `ConnectionPair`: no broker, no loop, no threads. A
`Publish` from one side becomes a `Delivery` for the other, with its properties taken through
the real content-header encoding (`encode_content_header` / `decode_content_header`), so
every exchange also checks that what the core emits can travel on the wire.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from amqprpc import Formatter, Json, Registry
from amqprpc._client import CallStarted
from amqprpc._envelope import Properties
from amqprpc._events import Action, Ignored
from amqprpc._frames import decode_content_header, encode_content_header
from amqprpc.protocol import (
    IGNORED,
    Ack,
    CallDone,
    ClientProtocol,
    Delivery,
    Invoke,
    Outcome,
    Publish,
    Reject,
    Returned,
    ServerProtocol,
    call_handler,
    call_handler_async,
)

__all__ = ["LoopbackPair", "Served", "run_coroutine", "run_invoke", "wire"]

REQUEST_QUEUE = "testrpc"
REPLY_QUEUE = "amq.gen-GvLZpdhsZX9O7gCg8GxTQg"


def wire(properties: Properties, body: bytes) -> Properties:
    """`properties` as the receiving side sees them: encoded as AMQP and decoded back."""
    size, decoded = decode_content_header(encode_content_header(properties, len(body)))
    assert size == len(body)
    return decoded


def run_coroutine(coro: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Drive a coroutine that never really suspends (test handlers don't), with no loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the handler suspended; core tests need handlers that don't")


def run_invoke(invoke: Invoke) -> Outcome:
    """Run a handler the way an adapter does: call_handler, or call_handler_async."""
    if invoke.handler.is_async:
        return run_coroutine(call_handler_async(invoke, wall_clock))
    return call_handler(invoke, wall_clock)


def wall_clock() -> float:
    """The Unix time core tests run handlers at (deadlines are measured against it)."""
    return WALL_NOW


WALL_NOW = 1_800_000_000.0


@dataclass
class Served:
    """What the server did with one request delivery."""

    delivery_tag: int
    actions: list[Action]
    invoke: Invoke | None

    @property
    def replies(self) -> list[Publish]:
        return [a for a in self.actions if isinstance(a, Publish)]

    @property
    def reply(self) -> Publish:
        (only,) = self.replies
        return only

    @property
    def settles(self) -> list[Ack | Reject]:
        return [a for a in self.actions if isinstance(a, (Ack, Reject))]


@dataclass
class LoopbackPair:
    """A ClientProtocol and a ServerProtocol joined in memory.

    Call `call()` for a whole round trip, or drive the steps yourself: `start()` ->
    `serve(publish)` -> `reply_to_client(served.reply)`. A client publish whose routing key
    is not the server's queue comes back as `Returned` (the request is mandatory).
    """

    registry: Registry
    formatter: Formatter = field(default_factory=Json)
    ack: str = "late"
    request_queue: str = REQUEST_QUEUE
    reply_queue: str = REPLY_QUEUE
    timeout: float = 5.0
    now: float = 1000.0
    client: ClientProtocol[str] = field(init=False)
    server: ServerProtocol = field(init=False)
    served: list[Served] = field(init=False, default_factory=list)
    _next_tag: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        self.client = ClientProtocol(
            request_queue=self.request_queue,
            reply_queue=self.reply_queue,
            formatter=self.formatter,
            timeout=self.timeout,
        )
        self.server = ServerProtocol(
            registry=self.registry,
            formatter=self.formatter,
            ack=self.ack,  # type: ignore[arg-type]
        )

    def start(self, method: str, arg: object, *, timeout: float | None = None) -> CallStarted:
        """Start a call on the client core (token: the method name)."""
        return self.client.start_call(method, arg, now=self.now, timeout=timeout, token=method)

    def deliver_request(self, publish: Publish) -> Served:
        """Deliver a request to the server core and return what it asked for, handler unrun."""
        assert publish.exchange == ""
        assert publish.routing_key == self.request_queue
        tag = self._next_tag
        self._next_tag += 1
        delivery = Delivery(
            properties=wire(publish.properties, publish.body),
            body=publish.body,
            delivery_tag=tag,
        )
        received = self.server.receive(delivery)
        served = Served(delivery_tag=tag, actions=list(received.actions), invoke=received.invoke)
        if received.invoke is None:  # answered or dropped on the spot: its ack is owed now
            served.actions.extend(self.server.flush_acks())
        self.served.append(served)
        return served

    def serve(self, publish: Publish) -> Served:
        """Deliver a request, run its handler (if any) and collect every server action."""
        served = self.deliver_request(publish)
        if served.invoke is not None:
            outcome = run_invoke(served.invoke)
            served.actions.extend(self.server.finish(served.invoke, outcome))
            served.actions.extend(self.server.flush_acks())  # as an adapter does, at once
        return served

    def reply_to_client(self, reply: Publish) -> CallDone[str] | Ignored:
        """Deliver a server reply to the client core."""
        assert reply.exchange == ""
        assert reply.routing_key == self.client.reply_queue
        assert not reply.mandatory
        delivery = Delivery(properties=wire(reply.properties, reply.body), body=reply.body)
        return self.client.receive(delivery)

    def route(self, publish: Publish) -> CallDone[str] | Ignored:
        """Route a client publish: to the server and back, or back as a basic.return."""
        if publish.routing_key != self.request_queue:
            assert publish.mandatory
            returned = Returned(
                reply_code=312,
                reply_text="NO_ROUTE",
                routing_key=publish.routing_key,
                properties=wire(publish.properties, publish.body),
                body=publish.body,
            )
            return self.client.returned(returned)
        served = self.serve(publish)
        results = [self.reply_to_client(reply) for reply in served.replies]
        assert len(results) == 1, served.actions
        return results[0]

    def call(self, method: str, arg: object, *, timeout: float | None = None) -> CallDone[str]:
        """One whole round trip. Returns the CallDone the client core produced."""
        started = self.start(method, arg, timeout=timeout)
        done = self.route(started.publish)
        assert done is not IGNORED
        assert isinstance(done, CallDone)
        assert done.call_id == started.call_id
        assert done.token == method
        return done
