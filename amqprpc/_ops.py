"""Multi-step operations, written once as generators that every adapter drives.

Owns the sequences of broker operations a codec performs: the exact queue declarations of
PROTOCOL.md section 2 (the request queue: not durable, not exclusive, not auto-delete, no
arguments; a client's private reply queue), one call from publish to result, and teardown
(cancel a consumer, close the channel). Each op yields actions and is resumed with the
broker's answer (or the call's CallDone): an adapter's pump (`_link.run`, `run_async`) is the
only code that blocks or awaits. No I/O here.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._errors import BrokerError, ProtocolViolation, RPCError, UsageError
from ._events import (
    Action,
    Answer,
    CallDone,
    CancelConsume,
    CloseChannel,
    Consume,
    Consuming,
    DeclareQueue,
    Qos,
    QueueDeclared,
    WaitFor,
)
from ._tracing import Caller, ClientSpan

if TYPE_CHECKING:
    from ._client import ClientProtocol

__all__ = [
    "DECLARE_PROFILES",
    "DeclareProfile",
    "Op",
    "call_op",
    "cancel_consume_op",
    "client_setup_op",
    "close_op",
    "consume_op",
    "request_queue_declaration",
    "resume_op",
    "server_setup_op",
]

T = TypeVar("T")
R = TypeVar("R")

Op = Generator[Action | WaitFor[T], Answer, R]
"""An op with call tokens of type T and a value of type R."""


DeclareProfile = Literal["go", "durable", "quorum", "passive"]
"""How a server declares its request queue (PROTOCOL.md sections 2 and 12.4)."""

DECLARE_PROFILES: tuple[DeclareProfile, ...] = ("go", "durable", "quorum", "passive")

_DENIED_FEATURE = "transient_nonexcl_queues"


def request_queue_declaration(queue: str, declare: DeclareProfile = "go") -> DeclareQueue:
    """The declaration of a request queue for a profile: "go", the one Go peers accept (not
    durable, not exclusive, not auto-delete, no arguments); "durable"; "quorum" (durable,
    x-queue-type=quorum); "passive" (check that it exists, never create it).

    Raises UsageError for another profile.
    """
    if declare == "go":
        return DeclareQueue(queue=queue, durable=False, exclusive=False, auto_delete=False)
    if declare == "durable":
        return DeclareQueue(queue=queue, durable=True)
    if declare == "quorum":
        return DeclareQueue(queue=queue, durable=True, arguments=(("x-queue-type", "quorum"),))
    if declare == "passive":
        return DeclareQueue(queue=queue, passive=True)
    raise UsageError(f"declare must be one of {', '.join(DECLARE_PROFILES)}, not {declare!r}")


def _declare_op(queue: str, declare: DeclareProfile) -> Op[Any, None]:
    # What the broker says about a refused declaration, in terms of the profiles.
    try:
        yield request_queue_declaration(queue, declare)
    except BrokerError as exc:
        raise _explained(exc, queue, declare) from exc


def _explained(exc: BrokerError, queue: str, declare: DeclareProfile) -> BrokerError:
    code = exc.reply_code
    if code == 541 and _DENIED_FEATURE in exc.reply_text:
        return BrokerError(code, (
            f"declaring queue {queue!r}: this broker denies queues that are neither durable "
            f"nor exclusive (deprecated feature {_DENIED_FEATURE}, denied by default from "
            "RabbitMQ 4.3). Permit it on every node (deprecated_features.permit."
            f"{_DENIED_FEATURE} = true), or declare the queue durable on every peer "
            "(declare='durable')"
        ))  # fmt: skip
    if code == 404 and declare == "passive":
        return BrokerError(code, f"queue {queue!r} does not exist, and declare='passive' "
                                 f"never creates it ({exc.reply_text})")  # fmt: skip
    if code == 406:
        return BrokerError(code, f"{exc.reply_text} (declare={declare!r}: every peer of a "
                                 "queue must declare it alike)")  # fmt: skip
    return exc


def server_setup_op(
    queue: str, *, prefetch: int, no_ack: bool = False, declare: DeclareProfile = "go"
) -> Op[Any, None]:
    """Declare the request queue as `declare` says and limit unacked deliveries (consuming
    starts later). Raises BrokerError with the profile's advice when the broker refuses."""
    yield from _declare_op(queue, declare)
    if not no_ack:
        yield Qos(prefetch_count=prefetch)


def resume_op(queue: str, declare: DeclareProfile = "go") -> Op[Any, str]:
    """The broker cancelled the server's consumer (its queue was deleted): declare the queue
    again and consume it. Returns the new consumer tag; the channel's prefetch still holds."""
    yield from _declare_op(queue, declare)
    return (yield from consume_op(queue))


def consume_op(queue: str, *, no_ack: bool = False, exclusive: bool = False) -> Op[Any, str]:
    """Start consuming `queue`. Returns the consumer tag."""
    answer = yield Consume(queue=queue, no_ack=no_ack, exclusive=exclusive)
    if not isinstance(answer, Consuming):
        raise ProtocolViolation(f"consuming {queue!r} answered with {answer!r}")
    return answer.consumer_tag


def cancel_consume_op(consumer_tag: str | None) -> Op[Any, None]:
    """Stop consuming (nothing to do when there is no consumer)."""
    if consumer_tag is not None:
        yield CancelConsume(consumer_tag=consumer_tag)


def close_op() -> Op[Any, None]:
    """Close the channel (and the connection, when the link opened it)."""
    yield CloseChannel()


def client_setup_op(reply_queue: str) -> Op[Any, None]:
    """Declare the client's private reply queue and consume it (no-ack).

    It is exclusive and auto-delete: replies belong to this connection alone, and the queue
    goes with it. Raises ProtocolViolation when the broker names another queue.
    """
    declared = yield DeclareQueue(queue=reply_queue, exclusive=True, auto_delete=True)
    if not isinstance(declared, QueueDeclared) or declared.queue != reply_queue:
        raise ProtocolViolation(f"reply queue declaration answered with {declared!r}")
    yield from consume_op(reply_queue, no_ack=True, exclusive=True)


def call_op(
    proto: ClientProtocol[T], method: str, arg: object, *, now: float,
    timeout: float | None = None, token: T, wall: float | None = None,
    inherited: float | None = None, trace: Caller | None = None,
) -> Op[T, object]:  # fmt: skip
    """One call: publish the request, wait for its end. Returns the result.

    `wall` (Unix time now) and `inherited` (the served request's deadline, read in the
    caller's context) are as for `ClientProtocol.start_call`. `trace` is the caller's trace
    context (`trace_context()`, read in the caller's context too): given, the call is traced
    by a CLIENT span from here to its end.

    A publish that fails ends the call as UNSENT and raises the link's error; any other
    exception thrown in by the pump (a cancelled wait, an interrupt) cancels the call and
    propagates. Raises the call's RPCError (RemoteError, RPCTimeout, Unroutable,
    ConnectionLost, ...).
    """
    span = None if trace is None else ClientSpan(trace, method, proto.request_queue)
    try:
        started = proto.start_call(
            method, arg, now=now, timeout=timeout, token=token, wall=wall, inherited=inherited,
            trace=None if span is None else span.headers,
        )  # fmt: skip
        call_id = started.call_id
        if span is not None:
            span.numbered(call_id, proto.reply_queue)
        try:
            yield started.publish
        except RPCError:
            proto.publish_failed(call_id)
            raise
        except BaseException:
            proto.cancel(call_id)
            raise
        try:
            done = yield WaitFor(call_id=call_id, token=token)
        except BaseException:
            # The caller stopped waiting (cancelled, interrupted): the call ends here, so its
            # pending entry must go too.
            proto.cancel(call_id)
            raise
        if not isinstance(done, CallDone):
            proto.cancel(call_id)
            raise ProtocolViolation(f"{method}: wait ended with {done!r}, not a CallDone")
        value = done.result()
    except BaseException as exc:
        if span is not None:
            span.end(exc)
        raise
    if span is not None:
        span.end()
    return value
