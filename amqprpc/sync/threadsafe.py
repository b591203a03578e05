"""The thread-safe sync client: blocking calls from any thread, over a connection of its own.

`ThreadSafeClientCodec` keeps one client core for its life and a background I/O thread per
connection. Callers hand their calls to the I/O thread and wait on a future; the I/O thread
runs each call through the same op as every other client (`call_op`), connects on first use
(on a helper thread, while it keeps the deadlines of the calls waiting), and ends calls where
the core says (`ClientProtocol.time_left`, `expire`, `fail_all`). After a loss the next call
connects again; in a forked child (a pre-forking web server's worker) it leaves the parent's
connection alone and connects anew.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
import uuid
import weakref
from types import TracebackType
from typing import Any

from .._client import DEFAULT_TIMEOUT, ClientProtocol, ClientView, client_protocol
from .._deadline import request_deadline
from .._errors import ConnectionLost, RPCError, UsageError
from .._formatters import FormatterLike
from .._link import Connector
from .._proxy import ServiceProxy
from .._server import DEFAULT_MAX_BODY_SIZE
from .._tracing import trace_context
from ._iothread import Call, Future, IoThread, Submitted, settle_future

__all__ = ["ThreadSafeClientCodec"]

# Every codec of this process, reset in a forked child at the fork itself (not on first use,
# where the child's threads would race to do it and could share one reply queue).
_live: weakref.WeakSet[ThreadSafeClientCodec] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for codec in list(_live):
        codec._forked()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def new_protocol(
    queue: str, formatter: FormatterLike, timeout: float, max_body_size: int
) -> ClientProtocol[Any]:
    """A client core with a fresh reply-queue name. Raises UsageError for bad settings."""
    return client_protocol(
        queue, formatter, unique=uuid.uuid4().hex, timeout=timeout, max_body_size=max_body_size
    )


class ThreadSafeClientCodec(ClientView):
    """Blocking calls from any number of threads, over a connection of its own.

    Connects on first use. When the connection drops, calls in flight fail with
    ConnectionLost and the next call connects again. In a forked child (a pre-forking web
    server's worker) it leaves the parent's connection alone and connects anew. Each
    connection has its own reply queue and core: `reply_queue`, `pending`, `stats` and
    `malformed` tell about the latest one (they restart when the codec reconnects).
    """

    def __init__(
        self,
        connector: Connector,
        queue: str,
        formatter: FormatterLike,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._connector = connector
        self._settings = (queue, formatter, timeout, max_body_size)
        # The latest connection's core; each connection has its own, and a new reply queue.
        self._proto: ClientProtocol[Call] = new_protocol(*self._settings)  # validates now
        self.timeout = timeout
        self._lock = threading.Lock()
        self._io: IoThread | None = None
        self._pid = os.getpid()
        self._closed = False
        _live.add(self)

    @property
    def blocked(self) -> bool:
        """Whether the broker has blocked this codec's connection (a memory or disk alarm);
        calls still end by their deadlines, and the I/O thread never waits on it."""
        io = self._io
        return io is not None and io.blocked

    def client(self, service: str) -> ServiceProxy[Any, Future]:
        """A proxy whose attributes are `service`'s remote methods.

        `proxy.Mul(arg)` blocks for the result; `proxy.Mul.future(arg)` returns a Future.
        """
        return ServiceProxy(service, self._call_positional, self._future_positional)

    def call(self, method: str, arg: object = None, *, timeout: float | None = None) -> Any:
        """Call `method` ("Service.Method", sent verbatim) and block for its result.

        Thread-safe, except on the codec's own I/O thread (in a future's done-callback, say),
        where waiting would stop the thread that must answer: that raises UsageError. Raises
        RemoteError, RPCTimeout, Unroutable, ConnectionLost, ProtocolViolation, EncodeError
        or UsageError (all RPCError).
        """
        io = self._io
        if io is not None and io.thread is threading.current_thread():
            raise UsageError(
                f"{method}: a blocking call on the client's own I/O thread (from a future's "
                "done-callback?) would wait forever; use call_async there"
            )
        return self.call_async(method, arg, timeout=timeout).result()

    def call_async(
        self, method: str, arg: object = None, *, timeout: float | None = None
    ) -> Future:
        """Start a call and return a `concurrent.futures.Future` of its result. Thread-safe."""
        future: Future = concurrent.futures.Future()
        # The call's time starts here: connecting, when it must, is part of it.
        now, wall, inherited = self._connector.now(), time.time(), request_deadline()
        self._submit([(method, arg, timeout, now, future, wall, inherited, trace_context())])
        return future

    def _submit(self, calls: list[Submitted]) -> None:
        for submitted in calls:
            while True:
                try:
                    io = self._io_thread()
                except RPCError as exc:
                    settle_future(submitted[4], error=exc)
                    break
                if io.submit(submitted):
                    break  # else that connection just ended: the next one takes it

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    def _future_positional(self, method: str, arg: object, timeout: float | None) -> Future:
        return self.call_async(method, arg, timeout=timeout)

    def _forked(self) -> None:
        # In a forked child (gunicorn's workers, say), before any of its threads runs: the
        # parent's I/O thread did not come along and its socket is the parent's. Forget both
        # (never close them from here) and start afresh, with a reply queue of the child's own.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._io = None
        self._proto = new_protocol(*self._settings)

    def _io_thread(self) -> IoThread:
        with self._lock:
            if self._closed:
                raise ConnectionLost("the client codec is closed")
            io = self._io
            if io is None or not io.alive:
                if io is not None:
                    self._proto = new_protocol(*self._settings)
                io = self._io = IoThread(self._connector, self._proto, self._submit)
            return io

    def close(self) -> None:
        """End pending calls with ConnectionLost, close the connection, stop the thread."""
        with self._lock:
            self._closed = True
            io, self._io = self._io, None
        if io is not None and self._pid == os.getpid():
            io.stop()
            if io.thread.is_alive() and io.thread is not threading.current_thread():
                io.thread.join(10)

    def __enter__(self) -> ThreadSafeClientCodec:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()
