"""The Link contract: what an adapter's link to a broker must offer the codecs.

Owns the two interfaces every adapter implements, method for method: `Link` (blocking, used
from one thread) and `AsyncLink` (asyncio). A link is one AMQP channel. It performs the core's
actions (`perform`), reports what the broker sends unasked to a `LinkSink`, supplies the
clock the core's deadlines are measured on (`now`), and knows nothing about RPC. The twin
pumps that drive a core op over a link live here too, so that they can be compared by eye.
Must not import a client library or do I/O itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from ._events import Action, Answer, Delivery, Performed, Returned, WaitFor
from ._ops import Op

__all__ = [
    "AsyncLink",
    "Connector",
    "Finished",
    "Link",
    "LinkSink",
    "NoSink",
    "advance",
    "advance_async",
    "no_wait",
    "run",
    "run_async",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class LinkSink(Protocol):
    """What a codec gives its link: where deliveries, returns and the channel's end go."""

    def delivered(self, delivery: Delivery) -> None:
        """A message arrived for one of the link's consumers (basic.deliver)."""

    def returned(self, returned: Returned) -> None:
        """The broker returned a mandatory message (basic.return)."""

    def closed(self, reason: str) -> None:
        """The channel or its connection closed (not on the codec's own request)."""

    def cancelled(self, consumer_tag: str) -> None:
        """The broker cancelled one of the link's consumers (basic.cancel): its queue was
        deleted. The channel stays open."""


class NoSink:
    """The sink of a link that no codec has bound yet: logs what arrives, at debug."""

    def delivered(self, delivery: Delivery) -> None:
        """Logs the delivery."""
        logger.debug("no sink for %r", delivery)

    def returned(self, returned: Returned) -> None:
        """Logs the return."""
        logger.debug("no sink for %r", returned)

    def closed(self, reason: str) -> None:
        """Logs the channel's end."""
        logger.debug("no sink for the channel's end: %s", reason)

    def cancelled(self, consumer_tag: str) -> None:
        """Logs the cancel."""
        logger.debug("no sink for the cancel of consumer %s", consumer_tag)


class Link(Protocol):
    """A blocking link: one channel, used only from the thread that drives it."""

    @property
    def is_open(self) -> bool:
        """Whether the channel and its connection are open."""

    @property
    def blocked(self) -> bool:
        """Whether the broker is not taking publishes (connection.blocked: a memory or disk
        alarm). Calls still end by their deadlines."""

    def bind(self, sink: LinkSink) -> None:
        """Send deliveries, returns and the channel's end to `sink` from now on."""

    def perform(self, action: Action) -> Performed:
        """Carry out one action. Returns the broker's answer, if it has one. Raises RPCError."""

    def now(self) -> float:
        """The link's clock (seconds, monotonic): the time base of the core's deadlines."""

    def flush(self) -> None:
        """Write what `perform` has queued now, not with the next round of I/O (an early
        ack must be out before its handler starts)."""

    def process(self, time_limit: float | None) -> None:
        """Do I/O for up to `time_limit` seconds (None: until something happens), handing
        what arrives to the sink. Raises ConnectionLost once the channel is gone."""

    def call_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the link's thread soon; the one method any thread may call.
        Raises ConnectionLost when the link is closed."""


class AsyncLink(Protocol):
    """An asyncio link: one channel, used from its event loop."""

    @property
    def is_open(self) -> bool:
        """Whether the channel and its connection are open."""

    @property
    def blocked(self) -> bool:
        """Whether the broker is not taking publishes (connection.blocked: a memory or disk
        alarm). Calls still end by their deadlines."""

    def bind(self, sink: LinkSink) -> None:
        """Send deliveries, returns and the channel's end to `sink` from now on."""

    async def perform(self, action: Action) -> Performed:
        """Carry out one action. Returns the broker's answer, if it has one. Raises RPCError."""

    def now(self) -> float:
        """The link's clock (the loop's time): the time base of the core's deadlines."""

    def perform_soon(self, action: Action) -> None:
        """Queue an action that needs no answer (an ack, a reject) without waiting; written
        in order with everything else this loop turn. Raises ConnectionLost."""

    def flush(self) -> None:
        """Write what `perform_soon` has queued now, not at the end of the loop turn (an
        early ack must be out before its handler starts)."""

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        """Run `callback` at `when` on the link's clock. Returns a handle with `cancel()`."""

    async def wait_closed(self) -> None:
        """Wait until the channel closes, for whatever reason."""


class Connector(Protocol):
    """What a client that owns its connection connects through (a URL's broker, say)."""

    def now(self) -> float:
        """The clock the links it makes use (`Link.now`)."""

    def connect(self) -> Link:
        """Open a connection and a link on it (within the connector's own limits; the calls
        waiting for it keep their own deadlines meanwhile). Raises ConnectionLost or
        BrokerError."""


class Finished(Generic[R]):
    """An op's end, as `advance` reports it: its value."""

    __slots__ = ("value",)

    def __init__(self, value: R) -> None:
        self.value = value


def _send(op: Op[T, R], answer: Answer) -> Action | WaitFor[T] | Finished[R]:
    try:
        return op.send(answer)
    except StopIteration as stop:
        return Finished(stop.value)


def _throw(op: Op[T, R], exc: BaseException) -> Action | WaitFor[T] | Finished[R]:
    try:
        return op.throw(exc)
    except StopIteration as stop:
        return Finished(stop.value)


def advance(
    op: Op[T, R], link: Link, step: Action | WaitFor[T] | Finished[R]
) -> WaitFor[T] | Finished[R]:
    """Perform `step`, the op's current action, and the ones after it on `link`, until the op
    waits for a call (returns that WaitFor) or ends (returns its value as Finished). Raises
    what the op raises. An exception from performing an action is thrown into the op, so the
    core ends the call it belongs to before it propagates."""
    while not isinstance(step, (WaitFor, Finished)):
        try:
            answer = link.perform(step)
        except BaseException as exc:  # noqa: BLE001 - handed to the op, which re-raises
            step = _throw(op, exc)
        else:
            step = _send(op, answer)
    return step


def run(op: Op[T, R], link: Link, wait: Callable[[WaitFor[T]], Answer]) -> R:
    """Drive `op` to its end: `link` performs its actions, `wait` its WaitFors.

    Returns the op's value and raises what it raises; an interrupt while waiting is thrown
    into the op, as a failed action is (`advance`).
    """
    step = advance(op, link, _send(op, None))
    while isinstance(step, WaitFor):
        try:
            answer = wait(step)
        except BaseException as exc:  # noqa: BLE001 - handed to the op, which re-raises
            step = advance(op, link, _throw(op, exc))
        else:
            step = advance(op, link, _send(op, answer))
    return step.value


async def advance_async(
    op: Op[T, R], link: AsyncLink, step: Action | WaitFor[T] | Finished[R]
) -> WaitFor[T] | Finished[R]:
    """`advance` for an AsyncLink: the same steps, awaited."""
    while not isinstance(step, (WaitFor, Finished)):
        try:
            answer = await link.perform(step)
        except BaseException as exc:  # noqa: BLE001 - handed to the op, which re-raises
            step = _throw(op, exc)
        else:
            step = _send(op, answer)
    return step


async def run_async(
    op: Op[T, R], link: AsyncLink, wait: Callable[[WaitFor[T]], Awaitable[Answer]]
) -> R:
    """`run` for an AsyncLink: the same steps, awaited."""
    step = await advance_async(op, link, _send(op, None))
    while isinstance(step, WaitFor):
        try:
            answer = await wait(step)
        except BaseException as exc:  # noqa: BLE001 - handed to the op, which re-raises
            step = await advance_async(op, link, _throw(op, exc))
        else:
            step = await advance_async(op, link, _send(op, answer))
    return step.value


def no_wait(step: WaitFor[Any]) -> Any:
    """The `wait` for ops that never wait for a call (setup, teardown): refuses to."""
    raise TypeError(f"this op does not wait for calls, yet yielded {step!r}")
