"""The client side of the protocol: calls out, replies in.

Owns what a client puts on the wire for a call (PROTOCOL.md section 3: `reply_to` = method,
`correlation_id` = our reply queue, `message_id` = call number, `expiration` from the timeout,
`mandatory` so a missing queue comes back at once) and how a reply, a basic.return or the
clock ends it (section 5, with the robustness rules of section 9). It composes the envelope,
a formatter and the pending table. A stray or malformed reply never raises: it is counted and
ignored, or fails only the call it names. No I/O, no clock, no threads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from ._envelope import (
    ERROR_HEADER,
    expiration_ms,
    is_shortstr,
    parse_call_id,
    parse_reply,
    request_properties,
)
from ._errors import (
    BrokerError,
    ConnectionLost,
    MessageTooLarge,
    ProtocolViolation,
    RemoteError,
    RPCError,
    RPCTimeout,
    Unroutable,
    UsageError,
)
from ._events import IGNORED, CallDone, CallStarted, Delivery, Ignored, Publish, Returned
from ._formatters import Formatter, FormatterLike, as_formatter, pack_body, unpack_body
from ._pending import Entry, PendingStats, PendingTable
from ._server import DEFAULT_MAX_BODY_SIZE

__all__ = ["DEFAULT_TIMEOUT", "ClientProtocol", "ClientView", "client_protocol", "reply_queue_name"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
REPLY_QUEUE_PREFIX = "amqprpc.reply."


def reply_queue_name(unique: str) -> str:
    """The name of a client's private reply queue, from a unique string the adapter supplies.

    The client names its reply queue itself (PROTOCOL.md section 2 allows any name of at most
    255 bytes that does not start with `amq.`), so calls can be numbered and timed before the
    queue is declared, while a connection is still being made.
    """
    return REPLY_QUEUE_PREFIX + unique


def client_protocol(
    queue: str,
    formatter: FormatterLike,
    *,
    unique: str,
    timeout: float = DEFAULT_TIMEOUT,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> ClientProtocol[Any]:
    """A client core for request queue `queue`, replies on `reply_queue_name(unique)`, for a
    formatter instance or class. `unique` is the adapter's (a uuid: the core has no randomness).
    Raises UsageError for bad settings."""
    return ClientProtocol(
        request_queue=queue,
        reply_queue=reply_queue_name(unique),
        formatter=as_formatter(formatter),
        timeout=timeout,
        max_body_size=max_body_size,
    )


class ClientProtocol(Generic[T]):
    """One client's calls over one reply queue. `T` is the adapter's per-call token type."""

    def __init__(
        self,
        *,
        request_queue: str,
        reply_queue: str,
        formatter: Formatter,
        timeout: float = DEFAULT_TIMEOUT,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._expiration = expiration_ms(timeout)  # validates
        if not request_queue or not is_shortstr(request_queue):
            raise UsageError(
                f"request queue must be a non-empty str of at most 255 bytes: {request_queue!r}"
            )
        self.request_queue = request_queue
        self.formatter = formatter
        self.timeout = timeout
        self.max_body_size = max_body_size
        self.pending: PendingTable[T] = PendingTable()
        self.malformed = 0  # replies whose message_id names no call at all
        self._alarm: float | None = None  # when the adapter's timer is set to fire
        self._reply_queue = ""
        self.reply_queue = reply_queue

    @property
    def reply_queue(self) -> str:
        """The queue replies come back to (sent as `correlation_id`)."""
        return self._reply_queue

    @reply_queue.setter
    def reply_queue(self, name: str) -> None:
        # Never empty: a request without correlation_id stops a Go server for good.
        if not name or not is_shortstr(name):
            raise UsageError(f"reply queue must be a non-empty str of at most 255 bytes: {name!r}")
        self._reply_queue = name

    def start_call(
        self, method: str, arg: object, *, now: float, timeout: float | None = None, token: T,
        wall: float | None = None, inherited: float | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> CallStarted:  # fmt: skip
        """Encode and number a call. Returns what to publish and the call's deadline.

        `wall` is the Unix time now: given, the request carries its absolute deadline
        (PROTOCOL.md section 12.1). `inherited` is the deadline of the request being served
        (`request_deadline()`), which the call may not outlive. `trace` are the trace context
        headers of the call's span (section 12.3). Raises UsageError for a bad
        method name or timeout, RPCTimeout when the inherited deadline has passed, EncodeError
        when `arg` cannot be encoded and MessageTooLarge when its body is over the limit;
        nothing is pending then.
        """
        if timeout is None:
            timeout, expiration = self.timeout, self._expiration
        else:
            expiration = expiration_ms(timeout)  # validates the caller's value
        if not method or not is_shortstr(method):
            raise UsageError(f"method must be a non-empty str of at most 255 bytes: {method!r}")
        deadline_ms = None
        if wall is not None:
            if inherited is not None and inherited - wall < timeout:
                timeout = inherited - wall
                if timeout <= 0:
                    raise RPCTimeout(f"{method}: the request being served is past its deadline")
                expiration = expiration_ms(timeout)
            deadline_ms = math.ceil((wall + timeout) * 1000)
        body = pack_body(self.formatter, arg)
        if len(body) > self.max_body_size:
            raise MessageTooLarge(
                f"{method}: argument of {len(body)} bytes exceeds the limit of "
                f"{self.max_body_size} bytes"
            )
        entry = self.pending.add(now=now, deadline=now + timeout, label=method, token=token)
        properties = request_properties(
            method=method,
            reply_queue=self._reply_queue,
            call_id=entry.call_id,
            expiration=expiration,
            deadline_ms=deadline_ms,
            trace=trace,
        )
        publish = Publish(
            routing_key=self.request_queue, properties=properties, body=body, mandatory=True,
            deadline=entry.deadline,
        )  # fmt: skip
        return CallStarted(call_id=entry.call_id, deadline=entry.deadline, publish=publish)

    def held(self, publish: Publish, now: float) -> Publish:
        """The request of a call that waited (for a connection) since it started, as it must
        go out `now`: its `expiration` becomes the time the call has left, so the broker still
        drops it when its caller gives up. Expire due calls first; a call that is no longer
        pending keeps the expiration it had."""
        call_id = int(publish.properties.message_id or -1)  # the number start_call gave it
        deadline = self.pending.deadline(call_id)
        if deadline is not None and deadline > now:
            publish.properties.expiration = expiration_ms(deadline - now)
        return publish

    def receive(self, delivery: Delivery) -> CallDone[T] | Ignored:
        """A message arrived on our reply queue. Returns the call it ends, or IGNORED."""
        properties = delivery.properties
        headers = properties.headers
        try:
            if headers and ERROR_HEADER in headers:
                info = parse_reply(properties)
                call_id = info.call_id
            else:  # the usual reply: a result, nothing to read but its call number
                info, call_id = None, parse_call_id(properties.message_id)
        except ProtocolViolation as exc:
            self.malformed += 1
            logger.debug("ignoring reply: %s", exc)
            return IGNORED
        entry = self.pending.resolve(call_id)
        if entry is IGNORED:
            logger.debug("ignoring reply for call %d: not pending", call_id)
            return IGNORED
        if info is None:
            try:
                value = unpack_body(self.formatter, delivery.body)
            except ProtocolViolation as exc:
                return CallDone(call_id=call_id, token=entry.token, error=exc)
            return CallDone(call_id=call_id, token=entry.token, value=value)
        if info.malformed_error:
            kind = type(info.bad_error_header).__name__
            error: RPCError = ProtocolViolation(f"{entry.label}: error header is {kind}, not str")
            return CallDone(call_id=entry.call_id, token=entry.token, error=error)
        if info.error is not None:
            error = RemoteError(info.error, info.error_type)
            return CallDone(call_id=entry.call_id, token=entry.token, error=error)
        try:
            value = unpack_body(self.formatter, delivery.body)
        except ProtocolViolation as exc:
            return CallDone(call_id=entry.call_id, token=entry.token, error=exc)
        return CallDone(call_id=entry.call_id, token=entry.token, value=value)

    def returned(self, returned: Returned) -> CallDone[T] | Ignored:
        """The broker returned a request (no queue by that name). Returns the call it ends."""
        try:
            info = parse_reply(returned.properties)  # a returned request keeps its message_id
        except ProtocolViolation:
            return IGNORED
        entry = self.pending.resolve(info.call_id)
        if entry is IGNORED:
            return IGNORED
        error = Unroutable(
            f"{entry.label}: no queue named {returned.routing_key!r} "
            f"({returned.reply_code} {returned.reply_text})"
        )
        return CallDone(call_id=entry.call_id, token=entry.token, error=error)

    def expire(self, now: float) -> list[CallDone[T]]:
        """End every call whose deadline has passed, each with an RPCTimeout.

        An adapter with one timer calls this when the timer fires, then asks `alarm()`.
        """
        self._alarm = None
        return [self._done(entry, self._timeout_error(entry)) for entry in self.pending.expire(now)]

    def next_deadline(self) -> float | None:
        """The earliest deadline of a pending call, or None."""
        return self.pending.next_deadline()

    def time_left(self, now: float) -> float | None:
        """Seconds from `now` until the earliest deadline (0 once it has passed), or None
        when no call is pending: how long a blocking adapter may wait before `expire`."""
        deadline = self.pending.next_deadline()
        if deadline is None:
            return None
        return deadline - now if deadline > now else 0.0

    def alarm(self) -> float | None:
        """When an adapter's one timer must fire next, if it must be set (again); None when the
        timer as it is already fires in time, or when nothing is pending.

        `expire` counts the timer as fired; the adapter sets a new one when this says so.
        """
        deadline = self.pending.next_deadline()
        if deadline is None or (self._alarm is not None and self._alarm <= deadline):
            return None
        self._alarm = deadline
        return deadline

    def cancel(self, call_id: int) -> bool:
        """The caller gave up on a call. Returns whether it was still pending."""
        return self.pending.cancel(call_id) is not IGNORED

    def publish_failed(self, call_id: int) -> bool:
        """The link could not publish a started call: it ends as UNSENT (the caller gets the
        link's error). Returns whether it was still pending."""
        return self.pending.unsent(call_id) is not IGNORED

    def reply_queue_gone(self, unique: str) -> list[CallDone[T]]:
        """The broker cancelled the reply consumer: someone deleted the reply queue, so no
        reply can come. Ends every pending call with ConnectionLost and names a new reply
        queue (`reply_queue_name(unique)`), which the adapter sets up (`client_setup_op`)
        before it publishes another call."""
        reason = f"the reply queue {self._reply_queue!r} was deleted"
        logger.warning("%s; failing %d calls in flight", reason, len(self.pending))
        dones = self.fail_all(reason)
        self.reply_queue = reply_queue_name(unique)
        return dones

    def fail_all(self, reason: str) -> list[CallDone[T]]:
        """End every pending call with ConnectionLost(reason) (connection gone, or closing)."""
        return [self._done(entry, ConnectionLost(reason)) for entry in self.pending.fail_all()]

    def refused(self, error: BrokerError) -> list[CallDone[T]]:
        """The broker refused the connection the pending calls waited for (the user's login or
        the virtual host): every one ends with `error`, which names what was refused."""
        return [self._done(entry, error) for entry in self.pending.fail_all()]

    @staticmethod
    def _done(entry: Entry[T], error: RPCError) -> CallDone[T]:
        return CallDone(call_id=entry.call_id, token=entry.token, error=error)

    @staticmethod
    def _timeout_error(entry: Entry[T]) -> RPCTimeout:
        return RPCTimeout(f"{entry.label}: no reply within {entry.deadline - entry.started:g} s")


class ClientView:
    """What every client codec tells about its calls; a codec sets `_proto` to its protocol,
    and `_link` to its link (or overrides `blocked`)."""

    _proto: ClientProtocol[Any]
    _link: Any

    @property
    def blocked(self) -> bool:
        """Whether the broker has blocked this codec's connection (a memory or disk alarm);
        calls still end by their deadlines. Each change is logged."""
        return bool(self._link.blocked)

    @property
    def queue(self) -> str:
        """The request queue this codec calls."""
        return self._proto.request_queue

    @property
    def reply_queue(self) -> str:
        """This codec's private reply queue (sent as `correlation_id`)."""
        return self._proto.reply_queue

    @property
    def pending(self) -> int:
        """How many calls are waiting for their end."""
        return len(self._proto.pending)

    @property
    def stats(self) -> PendingStats:
        """Counters of ignored replies (unknown, duplicate, late) and of calls by final state."""
        return self._proto.pending.stats

    @property
    def malformed(self) -> int:
        """How many replies were ignored because their message_id is not a call number."""
        return self._proto.malformed
