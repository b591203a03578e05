"""The vocabulary between the sans-IO core and an adapter, in one place.

Owns every value that crosses the line, in three plain groups:
- actions: what the core asks a link to do on the broker (`Publish`, `Ack`, `Reject`,
  `DeclareQueue`, `Qos`, `Consume`, `CancelConsume`, `CloseChannel`), plus `WaitFor`, which
  an adapter's pump performs by waiting for a call to end;
- events: what the broker told a link (`Delivery`, `Returned`, `QueueDeclared`, `Consuming`);
- results: what the core answers an adapter (`CallStarted`, `CallDone`, `Request`, `Invoke`,
  `Outcome`, `Received`, and `IGNORED` for "nothing to do").

Values are checked where they enter the library (from the wire, by the envelope parser and
`lenient_properties`; from the user, by the protocols), so the ones the core builds itself
are plain slotted classes with no checks of their own. Must not hold logic about calls,
formats or routing; must not do I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from ._errors import RPCError

if TYPE_CHECKING:
    from ._dispatch import Handler
    from ._envelope import Properties
    from ._tracing import ServerSpan

__all__ = [
    "IGNORED",
    "Ack",
    "Action",
    "CallDone",
    "CallStarted",
    "CancelConsume",
    "CloseChannel",
    "Consume",
    "Consuming",
    "DeclareQueue",
    "Delivery",
    "Event",
    "Ignored",
    "Invoke",
    "Outcome",
    "Performed",
    "Publish",
    "Qos",
    "QueueDeclared",
    "Received",
    "Reject",
    "Request",
    "Returned",
    "WaitFor",
]

T = TypeVar("T")


class Ignored(enum.Enum):
    """The named "nothing to do" answer: a late, duplicate or unknown reply was dropped."""

    IGNORED = "IGNORED"


IGNORED = Ignored.IGNORED


# -- actions: what a link must do on the broker ---------------------------------------------


@dataclass(slots=True, kw_only=True)
class Publish:
    """Publish `body` to `exchange` with `routing_key` (AMQP basic.publish)."""

    routing_key: str
    properties: Properties
    body: bytes
    exchange: str = ""
    mandatory: bool = False
    # A call's deadline on the link's clock: a link stops waiting to write the publish then
    # (a broker that stopped reading, under connection.blocked), and the call times out.
    deadline: float | None = None


@dataclass(slots=True, kw_only=True)
class Ack:
    """Acknowledge one delivery, or all up to it with `multiple` (basic.ack)."""

    delivery_tag: int
    multiple: bool = False


@dataclass(slots=True, kw_only=True)
class Reject:
    """Reject one delivery (basic.reject); without requeue it is dead-lettered or dropped."""

    delivery_tag: int
    requeue: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclareQueue:
    """Declare a queue with exactly these flags and arguments (queue.declare); `passive`
    only checks that it exists, never creating it.

    The broker answers with `QueueDeclared`.
    """

    queue: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    passive: bool = False
    arguments: tuple[tuple[str, str], ...] = ()  # the arguments table, as (name, value) pairs


@dataclass(frozen=True, slots=True, kw_only=True)
class Qos:
    """Limit unacknowledged deliveries on the channel (basic.qos prefetch_count)."""

    prefetch_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Consume:
    """Start consuming `queue` (basic.consume). The broker answers with `Consuming`."""

    queue: str
    no_ack: bool = False
    exclusive: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelConsume:
    """Stop a consumer (basic.cancel); deliveries already sent are still handled."""

    consumer_tag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseChannel:
    """Close the link's channel, and its connection when the link opened it."""


Action = Publish | Ack | Reject | DeclareQueue | Qos | Consume | CancelConsume | CloseChannel
"""What a link performs (`Link.perform`)."""


@dataclass(slots=True, kw_only=True)
class WaitFor(Generic[T]):
    """Wait until call `call_id` ends; resume the op with its `CallDone`.

    A pump performs it, not a link: `token` is what the adapter attached to the call (the
    future or slot that the call's `CallDone` is handed to).
    """

    call_id: int
    token: T


# -- events: what the broker told a link ----------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Delivery:
    """A message the broker delivered to one of our consumers (basic.deliver)."""

    properties: Properties
    body: bytes
    delivery_tag: int = 0
    redelivered: bool = False


@dataclass(slots=True, kw_only=True)
class Returned:
    """A mandatory message the broker could not route (basic.return)."""

    reply_code: int
    reply_text: str
    routing_key: str
    properties: Properties
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueDeclared:
    """The broker's answer to DeclareQueue (queue.declare-ok)."""

    queue: str
    message_count: int = 0
    consumer_count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Consuming:
    """The broker's answer to Consume (basic.consume-ok): the consumer's tag."""

    consumer_tag: str


Event = Delivery | Returned | QueueDeclared | Consuming
"""What a link reports: answers to actions (`perform`) and messages (to its sink)."""

Performed = QueueDeclared | Consuming | None
"""What `Link.perform` returns: the broker's answer to an action, if it has one."""


# -- results: what the core answers an adapter ------------------------------------------------


class CallStarted(NamedTuple):
    """A call the core has numbered: publish `publish`, then wait for call `call_id`."""

    call_id: int
    deadline: float
    publish: Publish


@dataclass(slots=True, kw_only=True)
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


@dataclass(slots=True, kw_only=True)
class Request:
    """A request as a server sees it: the fields it must copy into the reply, and the body."""

    method: str | None  # reply_to: "Service.Method"; None when absent
    reply_queue: str  # correlation_id: never empty (a request without one cannot be answered)
    call_id: str | None  # message_id, copied verbatim into the reply (None when absent)
    body: bytes
    deadline: float | None = None  # the caller's deadline (Unix seconds), when it sent one
    bad_deadline: bool = False  # it sent a deadline header that is not Unix milliseconds
    is_reply: bool = False  # it carries the reply mark: another server's reply, not a request
    delivery_count: int | None = None  # earlier deliveries (quorum queues' x-delivery-count)
    span: ServerSpan | None = None  # its trace span, when tracing is on (ended by its reply)


@dataclass(slots=True, kw_only=True)
class Invoke:
    """A request ready to run: call `handler.func(arg)`, then hand the outcome to `finish`."""

    request: Request
    handler: Handler
    arg: object
    delivery_tag: int
    stale_after: float | None = None  # Unix time after which it must not start (deadline + skew)
    channel: int = 0  # which of the server's channels delivered it (ServerProtocol.channel_lost)


class Outcome(NamedTuple):
    """What a handler did: returned `value`, or raised `error`; or, when `stale` is set, it
    never started because its caller's deadline had passed (or, `cancelled`, it was stopped
    at that deadline)."""

    value: object = None
    error: Exception | None = None
    stale: bool = False
    cancelled: bool = False


class Received(NamedTuple):
    """The answer to a delivery: actions to perform now, and maybe a handler to run."""

    actions: tuple[Action, ...]
    invoke: Invoke | None = None


Answer = CallDone[Any] | QueueDeclared | Consuming | None
"""What an op is resumed with: the result of the action it yielded."""
