"""The sync client codecs: blocking calls over pika.

Two shapes over one core:
- `ClientCodec` uses the caller's `BlockingConnection` and belongs to the thread that made it
  (pika is not thread-safe). It services the connection (heartbeats included) only while a call
  is in progress.
- `ThreadSafeClientCodec` owns its connection on a background I/O thread: any number of threads
  call through it at once, it connects on first use, reconnects on the call after a loss, and
  starts afresh in a forked child. This is the one for web apps (Django, Flask).
Thin by design (STYLE.md section 3): the core numbers, encodes, matches and times out calls.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import threading
from types import TracebackType
from typing import Any

from .._client import DEFAULT_TIMEOUT, ClientProtocol, ClientView
from .._errors import ConnectionLost, RPCError, RPCTimeout, UsageError
from .._events import IGNORED, CallDone, Delivery, Returned
from .._formatters import FormatterLike, as_formatter
from .._ops import call_op, client_setup_op
from .._pending import PendingStats
from .._proxy import ServiceProxy
from .._server import DEFAULT_MAX_BODY_SIZE
from ._link import PikaLink, Slot, clock, connection_parameters, is_connection, run

__all__ = ["ClientCodec", "ThreadSafeClientCodec", "client_codec"]

logger = logging.getLogger(__name__)

_Future = concurrent.futures.Future[Any]
# How long past its deadline a caller waits for the I/O thread before giving up on it.
_IO_THREAD_SLACK = 5.0
_IDLE_WAKEUP = 1.0


def _new_protocol(queue: str, formatter: FormatterLike, timeout: float, max_body_size: int) -> Any:
    return ClientProtocol(
        request_queue=queue,
        reply_queue="unset",  # the broker names the reply queue once connected
        formatter=as_formatter(formatter),
        timeout=timeout,
        max_body_size=max_body_size,
    )


class ClientCodec(ClientView):
    """Blocking calls over a caller's BlockingConnection, from the thread that made it."""

    def __init__(self, link: PikaLink, proto: ClientProtocol[Slot]) -> None:
        self._link = link
        self._proto = proto
        self._owner = threading.get_ident()
        self._closed = False
        link.on_delivery = self._on_reply
        link.on_return = self._on_return
        link.on_deadline = self._on_deadline

    def client(self, service: str) -> ServiceProxy[Any]:
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
        slot = Slot()
        op = call_op(self._proto, method, arg, now=clock(), timeout=timeout, token=slot)
        try:
            return run(op, self._link)
        except ConnectionLost:
            self._closed = True
            raise

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    def close(self) -> None:
        """Close the codec's channel (the caller's connection stays open)."""
        self._check_thread()
        if not self._closed:
            self._closed = True
            self._proto.fail_all("the client codec was closed")
            self._link.close()

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

    def _on_reply(self, delivery: Delivery) -> None:
        done = self._proto.receive(delivery)
        if done is not IGNORED:
            done.token.done = done

    def _on_return(self, returned: Returned) -> None:
        done = self._proto.returned(returned)
        if done is not IGNORED:
            done.token.done = done

    def _on_deadline(self, now: float) -> None:
        for done in self._proto.expire(now):
            done.token.done = done


class _IoThread:
    """One connection's I/O loop. Every touch of pika and of the core happens on its thread."""

    def __init__(self, parameters: Any, proto: ClientProtocol[_Future]) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"amqprpc-client-{proto.request_queue}", daemon=True
        )
        self._parameters = parameters
        self._proto = proto
        self._lock = threading.Lock()
        self._inbox: collections.deque[tuple[str, object, float | None, _Future]] = (
            collections.deque()
        )
        self._link: PikaLink | None = None
        self._dead = False
        self._stopping = False

    @property
    def alive(self) -> bool:
        return not self._dead

    def submit(self, method: str, arg: object, timeout: float | None, future: _Future) -> None:
        with self._lock:
            if self._dead:
                raise ConnectionLost(f"{method}: the connection is closed")
            self._inbox.append((method, arg, timeout, future))
            link = self._link
        if link is not None:
            try:
                link.call_threadsafe(self._drain)
            except ConnectionLost:
                pass  # the thread is ending; it fails whatever is left in the inbox

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            link = self._link
        if link is not None:
            try:
                link.call_threadsafe(lambda: None)
            except ConnectionLost:
                pass

    def _run(self) -> None:
        reason = "the client codec was closed"
        link = None
        try:
            link = PikaLink.connect(self._parameters)
            link.on_delivery = self._on_reply
            link.on_return = self._on_return
            self._proto.reply_queue = run(client_setup_op(), link)
            with self._lock:
                self._link = link
            self._drain()
            while not self._stopping:
                deadline = self._proto.next_deadline()
                wait = _IDLE_WAKEUP if deadline is None else deadline - clock()
                if wait > 0:
                    link.process(min(wait, _IDLE_WAKEUP))
                for done in self._proto.expire(clock()):
                    _settle(done)
        except RPCError as exc:
            reason = str(exc)
            logger.warning("client connection for %r lost: %s", self._proto.request_queue, exc)
        finally:
            with self._lock:
                self._dead = True
                left = list(self._inbox)
                self._inbox.clear()
            for done in self._proto.fail_all(reason):
                _settle(done)
            for method, _, _, future in left:
                _fail(future, ConnectionLost(f"{method}: {reason}"))
            if link is not None:
                link.close()

    def _drain(self) -> None:
        assert self._link is not None
        while True:
            with self._lock:
                if not self._inbox:
                    return
                method, arg, timeout, future = self._inbox.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it was sent
            try:
                started = self._proto.start_call(
                    method, arg, now=clock(), timeout=timeout, token=future
                )
            except RPCError as exc:  # a bad argument: nothing was sent
                future.set_exception(exc)
                continue
            try:
                self._link.perform(started.publish)
            except RPCError as exc:
                done = self._proto.publish_failed(started.call_id, exc)
                if done is not IGNORED:
                    _settle(done)
                raise

    def _on_reply(self, delivery: Delivery) -> None:
        done = self._proto.receive(delivery)
        if done is not IGNORED:
            _settle(done)

    def _on_return(self, returned: Returned) -> None:
        done = self._proto.returned(returned)
        if done is not IGNORED:
            _settle(done)


def _settle(done: CallDone[_Future]) -> None:
    if done.error is not None:
        _fail(done.token, done.error)
    else:
        try:
            done.token.set_result(done.value)
        except concurrent.futures.InvalidStateError:
            pass  # the caller cancelled it meanwhile


def _fail(future: _Future, error: RPCError) -> None:
    try:
        future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass  # the caller cancelled it meanwhile


class ThreadSafeClientCodec:
    """Blocking calls from any number of threads, over a connection of its own.

    Connects on first use. When the connection drops, calls in flight fail with
    ConnectionLost and the next call connects again. In a forked child (a pre-forking web
    server's worker) it leaves the parent's connection alone and connects anew.
    """

    def __init__(
        self,
        parameters: Any,
        queue: str,
        formatter: FormatterLike,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._parameters = parameters
        self._settings = (queue, formatter, timeout, max_body_size)
        _new_protocol(*self._settings)  # validates the settings now, not on first use
        self.timeout = timeout
        self._queue = queue
        self._lock = threading.Lock()
        self._io: _IoThread | None = None
        self._latest: ClientProtocol[_Future] | None = None  # the latest connection's core
        self._pid = os.getpid()
        self._closed = False

    @property
    def queue(self) -> str:
        """The request queue this codec calls."""
        return self._queue

    @property
    def stats(self) -> PendingStats:
        """Counters of ignored replies (unknown, duplicate, late) and of calls by final state,
        on the latest connection (they restart when the codec reconnects)."""
        latest = self._latest
        return latest.pending.stats if latest is not None else PendingStats()

    @property
    def malformed(self) -> int:
        """How many replies were ignored because their message_id is not a call number, on
        the latest connection."""
        latest = self._latest
        return latest.malformed if latest is not None else 0

    def client(self, service: str) -> ServiceProxy[Any]:
        """A proxy whose attributes are `service`'s remote methods.

        `proxy.Mul(arg)` blocks for the result; `proxy.Mul.future(arg)` returns a Future.
        """
        return ServiceProxy(service, self._call_positional, self._future_positional)

    def call(self, method: str, arg: object = None, *, timeout: float | None = None) -> Any:
        """Call `method` ("Service.Method", sent verbatim) and block for its result.

        Thread-safe. Raises RemoteError, RPCTimeout, Unroutable, ConnectionLost,
        ProtocolViolation, EncodeError or UsageError (all RPCError).
        """
        future = self.call_async(method, arg, timeout=timeout)
        limit = (self.timeout if timeout is None else timeout) + _IO_THREAD_SLACK
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RPCTimeout(f"{method}: the I/O thread did not end the call in time") from None

    def call_async(
        self, method: str, arg: object = None, *, timeout: float | None = None
    ) -> _Future:
        """Start a call and return a `concurrent.futures.Future` of its result. Thread-safe."""
        future: _Future = concurrent.futures.Future()
        try:
            self._io_thread().submit(method, arg, timeout, future)
        except RPCError as exc:
            future.set_exception(exc)
        return future

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    def _future_positional(self, method: str, arg: object, timeout: float | None) -> _Future:
        return self.call_async(method, arg, timeout=timeout)

    def _io_thread(self) -> _IoThread:
        if self._pid != os.getpid():
            # A forked child: the parent's I/O thread did not come along and its socket is
            # the parent's. Forget both (never close them from here) and start afresh.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._io = None
        with self._lock:
            if self._closed:
                raise ConnectionLost("the client codec is closed")
            io = self._io
            if io is None or not io.alive:
                self._latest = _new_protocol(*self._settings)
                io = self._io = _IoThread(self._parameters, self._latest)
                io.thread.start()
            return io

    def close(self) -> None:
        """End pending calls with ConnectionLost, close the connection, stop the thread."""
        with self._lock:
            self._closed = True
            io, self._io = self._io, None
        if io is not None and self._pid == os.getpid():
            io.stop()
            if io.thread is not threading.current_thread():
                io.thread.join(10)

    def __enter__(self) -> ThreadSafeClientCodec:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()


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
    and exclusive reply queue. With a URL (str) or pika parameters: a ThreadSafeClientCodec
    with its own connection and I/O thread (connects on first call). `timeout` is the default
    per-call timeout. Raises UsageError, ConnectionLost or BrokerError.
    """
    if not is_connection(connection):
        return ThreadSafeClientCodec(
            connection_parameters(connection),
            queue,
            formatter,
            timeout=timeout,
            max_body_size=max_body_size,
        )
    proto: ClientProtocol[Slot] = _new_protocol(queue, formatter, timeout, max_body_size)
    link = PikaLink(connection, owned=False)
    try:
        proto.reply_queue = run(client_setup_op(), link)
    except BaseException:
        link.close()
        raise
    return ClientCodec(link, proto)
