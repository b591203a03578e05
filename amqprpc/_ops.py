"""Multi-step operations, written once as generators that both adapters drive.

Owns the sequences of broker operations a codec performs: the exact queue declarations of
PROTOCOL.md section 2 (the request queue: not durable, not exclusive, not auto-delete, no
arguments; a client's private reply queue), and one call from publish to result. Each op
yields Actions and is resumed with the Event (or None) the adapter got by performing them:
an adapter's pump is the only code that blocks or awaits. No I/O here.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

from ._client import ClientProtocol
from ._errors import ProtocolViolation
from ._events import Action, CallDone, Consume, DeclareQueue, Event, Qos, WaitFor

__all__ = [
    "Op",
    "QueueDeclared",
    "call_op",
    "client_setup_op",
    "consume_op",
    "request_queue_declaration",
    "server_setup_op",
]

R = TypeVar("R")


class QueueDeclared:
    """The broker's answer to DeclareQueue: the queue's (possibly server-chosen) name."""

    __slots__ = ("consumer_count", "message_count", "queue")

    def __init__(self, queue: str, message_count: int = 0, consumer_count: int = 0) -> None:
        self.queue = queue
        self.message_count = message_count
        self.consumer_count = consumer_count


Op = Generator[Action, Event | QueueDeclared | None, R]


def request_queue_declaration(queue: str) -> DeclareQueue:
    """The one declaration of a request queue that Go peers accept (PROTOCOL.md section 2)."""
    return DeclareQueue(queue=queue, durable=False, exclusive=False, auto_delete=False)


def server_setup_op(
    queue: str, *, prefetch: int, no_ack: bool = False, consume: bool = True
) -> Op[None]:
    """Declare the request queue, limit unacked deliveries, and (`consume`) consume it."""
    yield request_queue_declaration(queue)
    if not no_ack:
        yield Qos(prefetch_count=prefetch)
    if consume:
        yield from consume_op(queue, no_ack=no_ack)


def consume_op(queue: str, *, no_ack: bool = False) -> Op[None]:
    """Start consuming the request queue (a server starts once it has handlers)."""
    yield Consume(queue=queue, no_ack=no_ack)


def client_setup_op(reply_queue: str = "") -> Op[str]:
    """Declare the client's private reply queue and consume it (no-ack). Returns its name.

    `reply_queue` "" asks the broker to name it. It is exclusive and auto-delete: replies
    belong to this connection alone, and the queue goes with it.
    """
    declared = yield DeclareQueue(queue=reply_queue, exclusive=True, auto_delete=True)
    if not isinstance(declared, QueueDeclared) or not declared.queue:
        raise ProtocolViolation(f"reply queue declaration answered with {declared!r}")
    yield Consume(queue=declared.queue, no_ack=True, exclusive=True)
    return declared.queue


def call_op(
    proto: ClientProtocol[R], method: str, arg: object, *, now: float,
    timeout: float | None = None, token: R,
) -> Op[object]:  # fmt: skip
    """One call: publish the request, wait for its end. Returns the result.

    An exception thrown in by the pump (a failed publish, a cancelled wait) cancels the call
    and propagates. Raises the call's RPCError (RemoteError, RPCTimeout, Unroutable,
    ConnectionLost, ...).
    """
    started = proto.start_call(method, arg, now=now, timeout=timeout, token=token)
    try:
        yield started.publish
        done = yield WaitFor(call_id=started.call_id, deadline=started.deadline, token=token)
        if not isinstance(done, CallDone):
            raise ProtocolViolation(f"{method}: wait ended with {done!r}, not a CallDone")
    except BaseException:
        # The publish failed, or the caller stopped waiting (cancelled, interrupted), or the
        # wait ended oddly: the call ends here, so its pending entry must go too.
        proto.cancel(started.call_id)
        raise
    return done.result()
