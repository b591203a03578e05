"""pika <-> amqprpc actions and events: the sync adapter's `Link`.

`PikaLink` performs the core's actions on one `BlockingChannel` and hands deliveries, returns
and the channel's end to its sink. pika exceptions become amqprpc errors here
(`map_exceptions`), and nowhere else. pika is not thread-safe: everything here runs on the
thread that owns the connection, except `call_threadsafe`. The only other modules that touch
pika are `_connect` (parameters, and connecting with its failures named) and `_compat`, which
fences the internals that header salvaging relies on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.adapters.utils.connection_workflow
import pika.exceptions

from .._envelope import Properties, read_properties
from .._errors import (
    BrokerError,
    ConnectionLost,
    RPCError,
    UsageError,
    connection_closed,
)
from .._events import (
    Ack,
    Action,
    CancelConsume,
    CloseChannel,
    Consume,
    Consuming,
    DeclareQueue,
    Delivery,
    Performed,
    Publish,
    Qos,
    QueueDeclared,
    Reject,
    Returned,
)
from .._link import Link, LinkSink, NoSink
from ._compat import FrameWriter, bounded_io, internals_usable, salvage_frames
from ._connect import addresses, connected, connection_parameters
from ._state import BlockedState

__all__ = [
    "PikaConnector",
    "PikaLink",
    "connection_parameters",
    "is_connection",
    "link_for",
    "map_exceptions",
    "open_link",
]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """Turn pika and socket exceptions raised inside into amqprpc errors."""
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise BrokerError(exc.reply_code, f"{what}: {exc.reply_text}") from exc
    except pika.exceptions.ConnectionClosedByBroker as exc:
        raise connection_closed(what, exc.reply_code, str(exc.reply_text)) from exc
    except (
        pika.exceptions.AMQPConnectionError,
        pika.exceptions.AMQPChannelError,
        pika.adapters.utils.connection_workflow.AMQPConnectorException,  # e.g. a stack timeout
    ) as exc:
        raise ConnectionLost(f"{what}: {type(exc).__name__}") from exc
    except (ConnectionError, OSError) as exc:
        raise ConnectionLost(f"{what}: {exc}") from exc
    except pika.exceptions.AMQPError as exc:
        raise RPCError(f"{what}: {exc!r}") from exc


def is_connection(target: object) -> bool:
    """Whether `target` is a pika BlockingConnection."""
    return isinstance(target, pika.BlockingConnection)


def _to_wire(properties: Properties) -> Any:
    wire = pika.BasicProperties()
    for name in Properties.__slots__:
        value = getattr(properties, name)
        if value is not None:
            setattr(wire, name, value)
    return wire


def _from_wire(props: Any) -> Properties:
    return read_properties(props)


class PikaLink:
    """One pika BlockingChannel, seen through the core's actions and events (a Link)."""

    def __init__(self, connection: Any, *, owned: bool) -> None:
        self.connection = connection
        self.owned = owned
        self._sink: LinkSink = NoSink()
        self._closed_reported = False
        usable = internals_usable(connection)
        self._bounded = bounded_io if usable else None
        if usable:
            salvage_frames(connection, _to_wire)
        with map_exceptions("opening a channel"):
            self.channel = connection.channel()
            self.channel.add_on_return_callback(self._returned)
            self.channel.add_on_cancel_callback(self._cancelled)
            self._blocked = BlockedState.of(connection)
        # Publishes, acks and rejects go out with the next round of I/O (`process`), which
        # every codec runs next: one write for a batch, not one each.
        self._writer = FrameWriter(connection, self.channel) if usable else None

    @classmethod
    def connect(cls, parameters: Any) -> PikaLink:
        """Open a connection of our own (closed with the link) to the first of `parameters`
        (one or a list, tried in order) that answers. Raises ConnectionLost naming every
        address tried and why it failed, BrokerError when the broker refuses the user (403,
        naming the user, never the password) or the virtual host (530)."""
        failures = []
        for one in parameters if isinstance(parameters, list) else [parameters]:
            address = addresses(one)
            try:
                connection = connected(one, address)
            except ConnectionLost as exc:
                failures.append(f"{address}: {exc}")
                continue
            return cls(connection, owned=True)
        raise ConnectionLost("cannot connect: " + "; ".join(failures))

    @property
    def is_open(self) -> bool:
        """Whether the channel and its connection are open."""
        return bool(self.connection.is_open and self.channel.is_open)

    def bind(self, sink: LinkSink) -> None:
        """Send deliveries, returns and the channel's end to `sink` from now on."""
        self._sink = sink

    def now(self) -> float:
        """The monotonic clock."""
        return time.monotonic()

    def perform(self, action: Action) -> Performed:
        """Carry out one action. Returns the broker's answer, if any. Raises RPCError."""
        channel = self.channel
        writer = self._writer
        if writer is not None:
            if isinstance(action, Publish):
                writer.publish(action)
                return None
            if isinstance(action, Ack):
                writer.ack(action)
                return None
            if isinstance(action, Reject):
                writer.reject(action)
                return None
            writer.flush()  # pika writes what follows itself: keep the order of frames
        if isinstance(action, Publish):
            with map_exceptions(f"publishing to {action.routing_key!r}"):
                channel.basic_publish(
                    action.exchange,
                    action.routing_key,
                    action.body,
                    _to_wire(action.properties),
                    mandatory=action.mandatory,
                )
            return None
        if isinstance(action, Ack):
            with map_exceptions("acknowledging"):
                channel.basic_ack(action.delivery_tag, multiple=action.multiple)
            return None
        if isinstance(action, Reject):
            with map_exceptions("rejecting"):
                channel.basic_reject(action.delivery_tag, requeue=action.requeue)
            return None
        if isinstance(action, DeclareQueue):
            with map_exceptions(f"declaring queue {action.queue!r}"):
                ok = channel.queue_declare(
                    action.queue,
                    passive=action.passive,
                    durable=action.durable,
                    exclusive=action.exclusive,
                    auto_delete=action.auto_delete,
                    arguments=dict(action.arguments) or None,
                ).method
            return QueueDeclared(
                queue=ok.queue, message_count=ok.message_count, consumer_count=ok.consumer_count
            )
        if isinstance(action, Qos):
            with map_exceptions("setting prefetch"):
                channel.basic_qos(prefetch_count=action.prefetch_count)
            return None
        if isinstance(action, Consume):
            with map_exceptions(f"consuming {action.queue!r}"):
                tag = channel.basic_consume(
                    action.queue,
                    self._delivered,
                    auto_ack=action.no_ack,
                    exclusive=action.exclusive,
                )
            return Consuming(consumer_tag=tag)
        if isinstance(action, CancelConsume):
            if self.is_open:
                with contextlib.suppress(RPCError), map_exceptions("cancelling the consumer"):
                    channel.basic_cancel(action.consumer_tag)
            return None
        if isinstance(action, CloseChannel):
            self._closed_reported = True  # closing on purpose: not news for the sink
            with contextlib.suppress(RPCError), map_exceptions("closing"):
                if channel.is_open:
                    channel.close()
                if self.owned and self.connection.is_open:
                    self.connection.close()
            return None
        raise TypeError(f"unknown action {action!r}")

    def flush(self) -> None:
        """Write what `perform` has queued now (it may be called from a delivery callback)."""
        if self._writer is not None:
            with map_exceptions("writing"):
                self._writer.write_now()

    def process(self, time_limit: float | None) -> None:
        """Run pika's I/O loop for at most `time_limit` seconds (None: until something
        happens; it returns early on events). Raises ConnectionLost once the channel is gone,
        after telling the sink."""
        if self._writer is not None:
            self._writer.flush()
        try:
            with map_exceptions("waiting for the broker"):
                if self._bounded is None:  # pika waits until its output is written
                    self.connection.process_data_events(time_limit=time_limit)
                else:
                    with self._bounded(self.connection):
                        self.connection.process_data_events(time_limit=time_limit)
        except RPCError as exc:
            self._report_closed(str(exc))
            raise
        if not self.is_open:
            self._report_closed("the channel or connection closed")
            raise ConnectionLost("the channel or connection closed")

    def _report_closed(self, reason: str) -> None:
        if not self._closed_reported:
            self._closed_reported = True
            self._sink.closed(reason)

    def call_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the connection's thread (the one safe cross-thread call)."""
        with map_exceptions("waking the I/O thread"):
            self.connection.add_callback_threadsafe(callback)

    def _delivered(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        delivery = Delivery(
            properties=_from_wire(props),
            body=body,
            delivery_tag=method.delivery_tag,
            redelivered=bool(method.redelivered),
        )
        self._sink.delivered(delivery)

    @property
    def blocked(self) -> bool:
        """Whether the broker said connection.blocked (a memory or disk alarm) and has not
        said connection.unblocked since."""
        return self._blocked.blocked

    def _cancelled(self, frame: Any) -> None:
        # Called inside pika's I/O: the sink only takes note; `process` returns soon after.
        self._sink.cancelled(frame.method.consumer_tag)

    def _returned(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        returned = Returned(
            reply_code=method.reply_code,
            reply_text=method.reply_text or "",
            routing_key=method.routing_key or "",
            properties=_from_wire(props),
            body=body,
        )
        self._sink.returned(returned)


class PikaConnector:
    """Opens PikaLinks on connections of their own, from pika parameters (a Connector)."""

    def __init__(self, parameters: Any) -> None:
        self.parameters = parameters

    def now(self) -> float:
        """The monotonic clock, as PikaLink's."""
        return time.monotonic()

    def connect(self) -> PikaLink:
        """Connect, within the parameters' own limits. Raises ConnectionLost."""
        return PikaLink.connect(self.parameters)

    def __repr__(self) -> str:
        return f"<PikaConnector {addresses(self.parameters)}>"


def open_link(target: object) -> Link:
    """A link on a caller's connection: a pika BlockingConnection, or any object with an
    `open_link()` that returns a Link (an in-memory broker's connection, say).

    Raises UsageError for anything else, ConnectionLost or BrokerError when no channel opens.
    """
    if is_connection(target):
        return PikaLink(target, owned=False)
    opener = getattr(target, "open_link", None)
    if callable(opener):
        link: Link = opener()
        return link
    raise UsageError(f"expected a pika BlockingConnection, not {target!r}")


def link_for(target: object) -> tuple[Link, bool]:
    """A link for a server: on a caller's connection (see `open_link`; the server must stay
    on its thread), or on a connection of its own from a Connector or a URL / pika
    parameters. Returns the link and whether the connection is the server's own.
    Raises UsageError, ConnectionLost or BrokerError."""
    if is_connection(target) or callable(getattr(target, "open_link", None)):
        return open_link(target), False
    connect = getattr(target, "connect", None)
    if callable(connect):
        link: Link = connect()
        return link, True
    return PikaLink.connect(connection_parameters(target)), True
