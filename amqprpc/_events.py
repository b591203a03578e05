"""Actions (what an adapter must do) and events (what the broker told us).

Owns the small frozen values that cross the line between the sans-IO core and an adapter.
Each checks itself when made, so a bad value fails where it is created. Must not hold logic
about calls, formats or routing; must not do I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._envelope import Properties
from ._errors import RPCError, UsageError

__all__ = [
    "IGNORED",
    "Ack",
    "Action",
    "CallDone",
    "Consume",
    "DeclareQueue",
    "Delivery",
    "Event",
    "Ignored",
    "Publish",
    "Qos",
    "Reject",
    "Returned",
    "WaitFor",
]

T = TypeVar("T")


class Ignored(enum.Enum):
    """The named "nothing to do" answer: a late, duplicate or unknown reply was dropped."""

    IGNORED = "IGNORED"


IGNORED = Ignored.IGNORED


# -- actions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    """Publish `body` to `exchange` with `routing_key` (AMQP basic.publish)."""

    routing_key: str
    properties: Properties
    body: bytes
    exchange: str = ""
    mandatory: bool = False

    def __post_init__(self) -> None:
        if not self.routing_key:
            raise UsageError("a publish needs a routing key (queue name)")
        if not isinstance(self.body, bytes):
            raise UsageError(f"body must be bytes, not {type(self.body).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """Acknowledge one delivery, or all up to it with `multiple` (basic.ack)."""

    delivery_tag: int
    multiple: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """Reject one delivery (basic.reject); without requeue it is dead-lettered or dropped."""

    delivery_tag: int
    requeue: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclareQueue:
    """Declare a queue with exactly these flags (queue.declare, no arguments table)."""

    queue: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Qos:
    """Limit unacknowledged deliveries on the channel (basic.qos prefetch_count)."""

    prefetch_count: int

    def __post_init__(self) -> None:
        if self.prefetch_count < 0 or self.prefetch_count > 65535:
            raise UsageError(f"prefetch_count must be 0..65535, not {self.prefetch_count}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Consume:
    """Start consuming `queue` (basic.consume)."""

    queue: str
    no_ack: bool = False
    exclusive: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitFor:
    """Wait until call `call_id` ends or `deadline` (on the core's clock) passes.

    `token` is what the adapter attached to the call (e.g. the future its reply resolves).
    """

    call_id: int
    deadline: float
    token: object = None


Action = Publish | Ack | Reject | DeclareQueue | Qos | Consume | WaitFor


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A message the broker delivered to one of our consumers (basic.deliver)."""

    properties: Properties
    body: bytes
    delivery_tag: int = 0
    redelivered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Returned:
    """A mandatory message the broker could not route (basic.return)."""

    reply_code: int
    reply_text: str
    routing_key: str
    properties: Properties
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDone(Generic[T]):
    """A call ended: with `value`, or with `error` when that is set.

    `token` is whatever the adapter attached to the call when it started it (a future).
    """

    call_id: int
    token: T
    value: object = None
    error: RPCError | None = None

    def result(self) -> object:
        """The call's result. Raises the call's error (an RPCError) when it failed."""
        if self.error is not None:
            raise self.error
        return self.value


Event = Delivery | Returned | CallDone[Any]
