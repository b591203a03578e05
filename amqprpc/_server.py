"""The server side of the protocol: deliveries in, replies and acks out.

Owns the life of each request delivery (RECEIVED -> INVOKING -> SETTLED) and what a server
must answer to it (PROTOCOL.md sections 3-4 and 9): decode the argument, find the handler,
turn the handler's result or exception into a reply, and order the reply and the ack as the
ack mode says. A bad request never raises out of here: it becomes an error reply when it can
be routed, and is rejected (dead-lettered or dropped) and logged when it cannot. Running the
handler is the adapter's job (on a loop or in a thread), through `call_handler` /
`call_handler_async`, which catch every handler exception. No I/O, no clock, no threads.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from ._deadline import served, serving
from ._dispatch import NotFound, Registry
from ._envelope import error_reply_properties, parse_request, reply_properties
from ._errors import EncodeError, ProtocolViolation, UsageError
from ._events import Ack, Action, Delivery, Invoke, Outcome, Publish, Received, Reject, Request
from ._formatters import Formatter, pack_body, unpack_body
from ._tracing import server_span

__all__ = [
    "DEFAULT_DEADLINE_SKEW",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_REDELIVERIES",
    "AckMode",
    "DeliveryState",
    "ServerProtocol",
    "ServerStats",
    "call_handler",
    "call_handler_async",
]

logger = logging.getLogger(__name__)

AckMode = Literal["late", "early"]
# RabbitMQ 4.0 lowered its default max_message_size to this; a larger publish gets a 406 that
# closes the channel, and every call on it (PROTOCOL.md section 12.4).
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024


class DeliveryState(enum.Enum):
    """Where a request delivery is; SETTLED deliveries leave the server's table."""

    RECEIVED = "received"
    INVOKING = "invoking"
    SETTLED = "settled"


# The whole state machine: trigger -> (the states it applies in, the state it leads to).
_TRANSITIONS = {
    "invoke": ((DeliveryState.RECEIVED,), DeliveryState.INVOKING),
    # answered after its handler ran, or on the spot (no such method, undecodable argument)
    "answer": ((DeliveryState.RECEIVED, DeliveryState.INVOKING), DeliveryState.SETTLED),
}


DEFAULT_DEADLINE_SKEW = 1.0  # seconds: hosts are assumed to keep their clocks synchronised
# A request delivered more often than this without an answer made servers crash (or hang
# until their connection died): it gets an error reply instead of another run. Quorum queues
# count deliveries; RabbitMQ 4.0 itself gives up after 20.
DEFAULT_MAX_REDELIVERIES = 5

_STALE = Outcome(stale=True)


def call_handler(invoke: Invoke, clock: Callable[[], float]) -> Outcome:
    """Run a plain (sync) handler, unless its caller's deadline has passed by `clock()` (Unix
    time). Safe in any thread. Returns its Outcome, never raises an Exception
    (BaseExceptions such as KeyboardInterrupt pass through)."""
    if invoke.stale_after is not None and clock() > invoke.stale_after:
        return _STALE
    token = serving(invoke.request.deadline)  # the handler's own calls inherit the deadline
    span = invoke.request.span  # and are children of its span
    scope = None if span is None else span.enter()
    try:
        return Outcome(value=invoke.handler.func(invoke.arg))
    except Exception as exc:  # noqa: BLE001 - every handler failure becomes an error reply
        return Outcome(error=exc)
    finally:
        if span is not None:
            span.leave(scope)
        served(token)


async def call_handler_async(invoke: Invoke, clock: Callable[[], float]) -> Outcome:
    """Run an `async def` handler, unless its caller's deadline has passed by `clock()`.
    Returns its Outcome; never raises an Exception."""
    if invoke.stale_after is not None and clock() > invoke.stale_after:
        return _STALE
    token = serving(invoke.request.deadline)
    span = invoke.request.span
    scope = None if span is None else span.enter()
    try:
        return Outcome(value=await invoke.handler.func(invoke.arg))
    except Exception as exc:  # noqa: BLE001 - every handler failure becomes an error reply
        return Outcome(error=exc)
    finally:
        if span is not None:
            span.leave(scope)
        served(token)


@dataclass(slots=True)
class ServerStats:
    """Counters of requests a server settled without running their handler, or stopped."""

    expired: int = 0  # the caller's deadline had passed before its handler started
    cancelled: int = 0  # an `async def` handler stopped at its caller's deadline
    replies: int = 0  # another server's reply (it carries the reply mark) arrived as a request
    loops: int = 0  # its reply queue is one this server consumes: answering it would loop
    poison: int = 0  # delivered more than max_redeliveries times before: answered, not run
    bad_deadline: int = 0  # a deadline header that is not Unix milliseconds (served anyway)
    dropped: int = 0  # no reply queue: it cannot be answered


def _rate_limited(count: int) -> bool:
    # Log the 1st, 10th, 100th, ... occurrence: one hostile peer cannot flood the log.
    while count % 10 == 0:
        count //= 10
    return count == 1


class ServerProtocol:
    """Turns request deliveries into handler invocations, replies and acks."""

    def __init__(
        self,
        *,
        registry: Registry,
        formatter: Formatter,
        ack: AckMode = "late",
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        queues: Collection[str] = (),
        deadline_skew: float = DEFAULT_DEADLINE_SKEW,
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
    ) -> None:
        if ack not in ("late", "early"):
            raise UsageError(f"ack must be 'late' or 'early', not {ack!r}")
        if not (isinstance(deadline_skew, (int, float)) and deadline_skew >= 0):
            raise UsageError(f"deadline_skew must be a number of seconds >= 0: {deadline_skew!r}")
        self.registry = registry
        self.formatter = formatter
        self.ack: AckMode = ack
        self.max_body_size = max_body_size
        self.queues = frozenset(queues)  # the request queues this server consumes
        self._destination = next(iter(self.queues)) if len(self.queues) == 1 else None
        self.deadline_skew = float(deadline_skew)
        if not (isinstance(max_redeliveries, int) and max_redeliveries >= 0):
            raise UsageError(f"max_redeliveries must be an int >= 0, not {max_redeliveries!r}")
        self.max_redeliveries = max_redeliveries
        self.stats = ServerStats()
        # With ack="late", answers leave their acks (and dropped requests their rejects) here,
        # and `flush_acks` sends them together.
        self._to_ack: list[int] = []
        self._to_reject: list[int] = []
        self._states: dict[int, DeliveryState] = {}
        self._drain_until: float | None = None
        self._channel = 0  # bumped by channel_lost: tags of older channels mean nothing now
        try:  # Go sends the encoding of an empty struct with an error ({} / 0x80)
            self._error_body = pack_body(formatter, {})
        except EncodeError:
            self._error_body = b""

    @property
    def in_flight(self) -> int:
        """How many deliveries are received but not yet answered."""
        return len(self._states)

    def receive(self, delivery: Delivery) -> Received:
        """Take one request delivery. Returns the actions to perform now (with ack="early",
        the ack, to be sent before the handler starts) and, unless the request was answered
        or dropped on the spot, the Invoke to run. Never raises."""
        tag = delivery.delivery_tag
        early: tuple[Action, ...] = (Ack(delivery_tag=tag),) if self.ack == "early" else ()
        try:
            request = parse_request(delivery.properties, delivery.body)
        except ProtocolViolation as exc:
            self.stats.dropped += 1
            logger.warning("dropping request (delivery %d): %s", tag, exc)
            return self._refuse(tag, early)
        if request.is_reply or request.reply_queue in self.queues:
            return self._refuse_loop(tag, request, early)
        if request.bad_deadline:
            self.stats.bad_deadline += 1
        found = self.registry.lookup(request.method)
        # From here every request gets a reply (or, past its deadline, none): its span ends then.
        request.span = server_span(
            delivery.properties.headers, None if isinstance(found, NotFound) else found.name,
            call_id=request.call_id, reply_queue=request.reply_queue, queue=self._destination,
        )  # fmt: skip
        self._states[tag] = DeliveryState.RECEIVED
        if self._too_often(request, delivery.redelivered):
            self.stats.poison += 1
            count = request.delivery_count
            seen = "again" if count is None else f"after {count} deliveries"
            text = (
                f"amqprpc: request redelivered {seen} without an answer (did it crash a "
                f"server?): not run again (max_redeliveries={self.max_redeliveries})"
            )
            reply = self._reply(request, b"", text, "TooManyDeliveries")
            return Received(actions=(*early, *self._settle(tag, reply)))
        if len(delivery.body) > self.max_body_size:
            text = f"amqprpc: request body of {len(delivery.body)} bytes exceeds the limit"
            error = ProtocolViolation(f"{text} of {self.max_body_size} bytes")
            return Received(actions=early + self._answer(tag, request, Outcome(error=error)))
        if isinstance(found, NotFound):
            reply = self._reply(request, b"", found.text, None)
            return Received(actions=(*early, *self._settle(tag, reply)))
        try:
            arg = unpack_body(self.formatter, request.body)
        except ProtocolViolation as exc:
            return Received(actions=early + self._answer(tag, request, Outcome(error=exc)))
        self._transition(tag, "invoke")
        invoke = Invoke(
            request=request, handler=found, arg=arg, delivery_tag=tag, channel=self._channel
        )
        if request.deadline is not None:
            invoke.stale_after = request.deadline + self.deadline_skew
        return Received(actions=early, invoke=invoke)

    def _too_often(self, request: Request, redelivered: bool) -> bool:
        # Quorum queues count deliveries; classic queues only flag a redelivery, so there a
        # request can be refused for it only when no redelivery is allowed at all.
        if request.delivery_count is not None:
            return request.delivery_count > self.max_redeliveries
        return redelivered and self.max_redeliveries == 0

    def _refuse(self, tag: int, early: tuple[Action, ...]) -> Received:
        # Settled without a reply: rejected (dead-lettered where a policy says so), with the
        # batched acks and before any multiple ack that would cover it; or already acked.
        if not early:
            self._to_reject.append(tag)
        return Received(actions=early)

    def _refuse_loop(self, tag: int, request: Request, early: tuple[Action, ...]) -> Received:
        # PROTOCOL.md section 12.2: a reply is never run, and never sent into our own queue;
        # either would let one message run handlers forever.
        if request.is_reply:
            self.stats.replies += 1
            count, what = self.stats.replies, "a reply (it carries amqprpc-reply)"
        else:
            self.stats.loops += 1
            count, what = self.stats.loops, f"its reply queue {request.reply_queue!r} is ours"
        if _rate_limited(count):
            logger.warning("not running %s for %s: %s (%d so far)", request.method, what,
                           "answering it would loop", count)  # fmt: skip
        return self._refuse(tag, early)

    def finish(self, invoke: Invoke, outcome: Outcome) -> tuple[Action, ...]:
        """A handler ended. Returns the reply to publish, then (ack="late") the ack; nothing
        to publish when it never started because its caller's deadline had passed.

        A handler whose channel was lost meanwhile (`channel_lost`) still gets its reply
        published, on the new channel, but no ack: the broker has requeued its request.
        """
        if invoke.request.span is not None:
            invoke.request.span.handled(outcome.error, stale=outcome.stale)
        if invoke.channel != self._channel:
            return () if outcome.stale else (self._reply_for(invoke.request, outcome),)
        if outcome.stale:
            return self._stale(invoke, cancelled=outcome.cancelled)
        if outcome.error is not None:
            exc = outcome.error
            logger.info("%s raised %s", invoke.handler.name, type(exc).__name__)
            logger.debug("%s traceback", invoke.handler.name, exc_info=exc)
        return self._answer(invoke.delivery_tag, invoke.request, outcome)

    def _stale(self, invoke: Invoke, *, cancelled: bool) -> tuple[Action, ...]:
        # The caller's deadline passed: its handler never started, or (cancelled) the adapter
        # stopped it at `cancel_after`. No reply: the caller has given up (section 12.1).
        if cancelled:
            self.stats.cancelled += 1
        else:
            self.stats.expired += 1
        tag = invoke.delivery_tag
        self._transition(tag, "answer")
        if self.ack == "late":
            self._to_ack.append(tag)
        return ()

    def cancel_after(self, invoke: Invoke, now: float) -> float | None:
        """Seconds from `now` (Unix time) after which a running `async def` handler is past
        its caller's deadline (0 when it already is), or None when its caller sent none."""
        if invoke.stale_after is None:
            return None
        return max(0.0, invoke.stale_after - now)

    def _answer(self, tag: int, request: Request, outcome: Outcome) -> tuple[Action, ...]:
        return self._settle(tag, self._reply_for(request, outcome))

    def _reply_for(self, request: Request, outcome: Outcome) -> Publish:
        if outcome.error is not None:
            exc = outcome.error
            return self._reply(request, b"", str(exc), type(exc).__name__)
        try:
            body = pack_body(self.formatter, outcome.value)
            if len(body) > self.max_body_size:
                raise EncodeError(f"result of {len(body)} bytes exceeds the size limit")
        except EncodeError as exc:
            text = f"amqprpc: cannot encode result: {exc}"
            return self._reply(request, b"", text, type(exc).__name__)
        return self._reply(request, body, None, None)

    def _reply(
        self, request: Request, body: bytes, error: str | None, error_type: str | None
    ) -> Publish:
        # The one place a reply is routed: to the default exchange, with the request's
        # correlation_id as the routing key (PROTOCOL.md section 4).
        if error is None:
            properties = reply_properties(request)
        else:
            properties = error_reply_properties(request, error, error_type)
            body = self._error_body
        if request.span is not None:
            request.span.end(error, error_type)
        return Publish(routing_key=request.reply_queue, properties=properties, body=body)

    def _settle(self, tag: int, reply: Publish) -> tuple[Action, ...]:
        self._transition(tag, "answer")
        if self.ack == "late":
            self._to_ack.append(tag)
        return (reply,)

    def flush_acks(self) -> tuple[Ack | Reject, ...]:
        """The acks (and rejects) owed for settled deliveries, batched, in the order to send.

        Returns the owed rejects first, then one `multiple` ack for every owed tag below the
        oldest delivery still in progress, then single acks for the owed tags above it.
        Delivery tags grow in delivery order on a channel (AMQP 0-9-1 section 1.8.3.13), so a
        multiple ack up to a tag below every unanswered delivery acks only answered ones; the
        rejects go first because a multiple ack would settle their tags too, and a reject of a
        settled tag closes the channel (406). Empty when nothing is owed.
        """
        rejects: list[Ack | Reject] = [Reject(delivery_tag=tag) for tag in self._to_reject]
        self._to_reject = []
        owed = self._to_ack
        if not owed:
            return tuple(rejects)
        self._to_ack = []
        if not self._states:
            return (*rejects, _ack_up_to(owed))
        oldest = next(iter(self._states))  # tags enter in increasing order
        below = [tag for tag in owed if tag < oldest]
        acks: list[Ack | Reject] = [Ack(delivery_tag=tag) for tag in owed if tag > oldest]
        if below:
            acks.insert(0, _ack_up_to(below))
        return (*rejects, *acks)

    def _transition(self, tag: int, trigger: str) -> None:
        applies_in, state = _TRANSITIONS[trigger]
        if self._states[tag] not in applies_in:
            raise KeyError(f"delivery {tag}: {trigger} does not apply in {self._states[tag]}")
        if state is DeliveryState.SETTLED:
            del self._states[tag]
        else:
            self._states[tag] = state

    def states(self) -> Mapping[int, DeliveryState]:
        """Unsettled deliveries by delivery tag (a read-only view)."""
        return dict(self._states)

    def channel_lost(self) -> int:
        """The channel the requests came on is gone, and a new one will be consumed: forget
        its deliveries (the broker requeues every unacked one) and what was owed for them.
        Handlers still running get their replies published without an ack (`finish`).
        Returns how many deliveries were unsettled."""
        unsettled = len(self._states)
        self._channel += 1
        self._states.clear()
        self._to_ack = []
        self._to_reject = []
        return unsettled

    def start_drain(self, now: float, grace: float) -> None:
        """The server stopped consuming: in-flight requests have `grace` seconds to finish."""
        self._drain_until = now + grace

    def drain_time_left(self, now: float) -> float | None:
        """Seconds a draining server may still wait for in-flight requests, or None when they
        are all answered or the grace period is over (after `start_drain`)."""
        if not self._states or self._drain_until is None or now >= self._drain_until:
            return None
        return self._drain_until - now


def _ack_up_to(tags: list[int]) -> Ack:
    # One ack for all of `tags`: a multiple ack up to the highest, or a single one.
    return Ack(delivery_tag=max(tags), multiple=len(tags) > 1)
