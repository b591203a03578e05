"""The sync client codecs: blocking calls over pika.

Two shapes over one core and one call path (`call_op`):
- `ClientCodec` uses the caller's `BlockingConnection` and belongs to the thread that made it
  (pika is not thread-safe). It services the connection (heartbeats included) only while a call
  is in progress.
- `ThreadSafeClientCodec` (in `threadsafe`) owns its connection on a background I/O thread;
  it is the one for web apps (Django, Flask).
Thin by design (STYLE.md section 3): the core numbers, encodes, matches and times out calls;
this module waits where the core says (`ClientProtocol.time_left`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, overload

from .._client import DEFAULT_TIMEOUT, ClientProtocol, ClientView
from .._deadline import request_deadline
from .._errors import ConnectionLost, UsageError
from .._events import IGNORED, CallDone, Delivery, Returned, WaitFor
from .._formatters import FormatterLike
from .._link import Connector, Link, no_wait, run
from .._ops import call_op, client_setup_op, close_op
from .._proxy import ServiceProxy
from .._server import DEFAULT_MAX_BODY_SIZE
from .._tracing import trace_context
from ._link import PikaConnector, connection_parameters, is_connection, open_link
from ._state import Slot
from .threadsafe import ThreadSafeClientCodec, new_protocol

__all__ = ["ClientCodec", "ThreadSafeClientCodec", "client_codec"]


class ClientCodec(ClientView):
    """Blocking calls over a caller's BlockingConnection, from the thread that made it."""

    _link: Link

    def __init__(self, link: Link, proto: ClientProtocol[Slot]) -> None:
        self._link = link
        self._proto = proto
        self._owner = threading.get_ident()
        self._closed = False
        self._setup_due = False  # the reply queue was deleted: set up its successor first
        link.bind(self)

    def client(self, service: str) -> ServiceProxy[Any, Any]:
        """A proxy whose attributes are `service`'s remote methods: `proxy.Mul(arg)`."""
        return ServiceProxy(service, self._call_positional)

    def call(self, method: str, arg: object = None, *, timeout: float | None = None) -> Any:
        """Call `method` ("Service.Method", sent verbatim) and block for its result.

        Raises RemoteError, RPCTimeout, Unroutable, ConnectionLost, ProtocolViolation,
        EncodeError, or UsageError when used from a thread other than its owner.
        """
        self._check_thread()
        if self._closed or not self._link.is_open:
            raise ConnectionLost(f"{method}: the client codec is closed")
        if self._setup_due:
            self._setup_due = False  # a cancel during the setup sets it again
            run(client_setup_op(self._proto.reply_queue), self._link, no_wait)
        op = call_op(
            self._proto, method, arg, now=self._link.now(), timeout=timeout, token=Slot(),
            wall=time.time(), inherited=request_deadline(), trace=trace_context(),
        )  # fmt: skip
        return run(op, self._link, self._wait)

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    def _wait(self, wait: WaitFor[Slot]) -> CallDone[Slot]:
        # Pump the connection for as long as the core says, until the call's slot is filled:
        # by a reply or a return (from `process`), or by `expire` once its deadline passes.
        slot = wait.token
        while slot.done is None:
            self._link.process(self._proto.time_left(self._link.now()))
            for done in self._proto.expire(self._link.now()):
                done.token.done = done
        return slot.done

    def close(self) -> None:
        """Close the codec's channel (the caller's connection stays open)."""
        self._check_thread()
        if not self._closed:
            self._closed = True
            self._proto.fail_all("the client codec was closed")
            run(close_op(), self._link, no_wait)

    def __enter__(self) -> ClientCodec:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise UsageError(
                "this codec runs on a caller's pika BlockingConnection, which belongs to the "
                "thread that created it; use a URL (client_codec(url, ...)) for a thread-safe "
                "client"
            )

    # -- the link's sink -------------------------------------------------------------------

    def delivered(self, delivery: Delivery) -> None:
        """A reply arrived: the core says which call it ends."""
        done = self._proto.receive(delivery)
        if done is not IGNORED:
            done.token.done = done

    def returned(self, returned: Returned) -> None:
        """A request came back unroutable: the core ends its call."""
        done = self._proto.returned(returned)
        if done is not IGNORED:
            done.token.done = done

    def closed(self, reason: str) -> None:
        """The channel went away: calls in flight end with ConnectionLost, later ones too."""
        self._closed = True
        for done in self._proto.fail_all(reason):
            done.token.done = done

    def cancelled(self, consumer_tag: str) -> None:
        """The reply queue was deleted: calls in flight end with ConnectionLost, and the next
        call sets up a new reply queue first."""
        for done in self._proto.reply_queue_gone(uuid.uuid4().hex):
            done.token.done = done
        self._setup_due = True


class _BlockingConnection(Protocol):
    """What the type checker knows of a pika BlockingConnection (pika ships no types)."""

    def process_data_events(self, time_limit: float | None = ...) -> None: ...
    def add_callback_threadsafe(self, callback: Any) -> None: ...


class _OpensLink(Protocol):
    def open_link(self) -> Link: ...


class _Parameters(Protocol):
    """pika connection parameters (`pika.URLParameters`, `pika.ConnectionParameters`)."""

    host: str
    port: int


@overload
def client_codec(
    connection: _BlockingConnection | _OpensLink,
    queue: str,
    formatter: FormatterLike,
    *,
    timeout: float = ...,
    max_body_size: int = ...,
) -> ClientCodec: ...
@overload
def client_codec(
    connection: str | _Parameters | Sequence[str | _Parameters] | Connector,
    queue: str,
    formatter: FormatterLike,
    *,
    timeout: float = ...,
    max_body_size: int = ...,
) -> ThreadSafeClientCodec: ...
def client_codec(
    connection: Any,
    queue: str,
    formatter: FormatterLike,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> ClientCodec | ThreadSafeClientCodec:
    """A sync client codec for request queue `queue`.

    With a pika `BlockingConnection`: a ClientCodec for the calling thread, on its own channel
    and exclusive reply queue. With a URL (str) or pika parameters, or a list of them (a
    cluster's nodes, tried in order on each connect): a ThreadSafeClientCodec with its own
    connection and I/O thread (connects on first call). `timeout` is the default
    per-call timeout. Raises UsageError, ConnectionLost or BrokerError.
    """
    if not (is_connection(connection) or callable(getattr(connection, "open_link", None))):
        connector = connection
        if not callable(getattr(connection, "connect", None)):
            connector = PikaConnector(connection_parameters(connection))
        return ThreadSafeClientCodec(
            connector, queue, formatter, timeout=timeout, max_body_size=max_body_size
        )
    proto: ClientProtocol[Slot] = new_protocol(queue, formatter, timeout, max_body_size)
    link = open_link(connection)
    try:
        run(client_setup_op(proto.reply_queue), link, no_wait)
    except BaseException:
        run(close_op(), link, no_wait)
        raise
    return ClientCodec(link, proto)
