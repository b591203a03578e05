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

import collections
import concurrent.futures
import logging
import os
import threading
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._client import DEFAULT_TIMEOUT, ClientProtocol, ClientView, reply_queue_name
from .._errors import ConnectionLost, RPCError, UsageError
from .._events import IGNORED, Action, CallDone, Delivery, Publish, Returned, WaitFor
from .._formatters import FormatterLike, as_formatter
from .._link import Connector, Finished, Link, advance, no_wait, run
from .._ops import Op, call_op, client_setup_op, close_op
from .._proxy import ServiceProxy
from .._server import DEFAULT_MAX_BODY_SIZE

__all__ = ["ThreadSafeClientCodec"]

logger = logging.getLogger(__name__)

Future = concurrent.futures.Future[Any]
Submitted = tuple[str, object, "float | None", float, Future]  # method, arg, timeout, when


def new_protocol(
    queue: str, formatter: FormatterLike, timeout: float, max_body_size: int
) -> ClientProtocol[Any]:
    """A client core with a fresh reply-queue name. Raises UsageError for bad settings."""
    return ClientProtocol(
        request_queue=queue,
        reply_queue=reply_queue_name(uuid.uuid4().hex),
        formatter=as_formatter(formatter),
        timeout=timeout,
        max_body_size=max_body_size,
    )


class _Call:
    """The token of one call on the I/O thread: its op, where the op stands, its future."""

    __slots__ = ("future", "op", "step")

    op: Op[_Call, object]

    def __init__(self, future: Future) -> None:
        self.future = future
        self.step: Action | WaitFor[_Call] | None = None  # None: waiting for its CallDone


class _IoThread:
    """One connection's I/O loop. Every touch of the link and of the core happens on it."""

    def __init__(
        self,
        connector: Connector,
        proto: ClientProtocol[_Call],
        on_end: Callable[[list[Submitted]], None],
    ) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"amqprpc-client-{proto.request_queue}", daemon=True
        )
        self._connector = connector
        self._proto = proto
        self._lock = threading.Lock()
        self._inbox: collections.deque[Submitted] = collections.deque()
        self._on_end = on_end  # takes the calls that came too late for this connection
        self._link: Link | None = None
        self._wake_pending = False  # a wake-up is queued: later submits need not queue one
        self._held: list[_Call] = []  # started, not yet published (before connecting)
        self._kick = threading.Event()  # wakes the I/O thread while it has no link yet
        self._started = False
        self._dead = False
        self._stopping = False

    @property
    def alive(self) -> bool:
        return not self._dead

    def submit(self, submitted: Submitted) -> bool:
        """Queue a call for this connection. Returns False when the connection is gone."""
        with self._lock:
            if self._dead:
                return False
            self._inbox.append(submitted)
            link = self._link
            wake = link is not None and not self._wake_pending
            self._wake_pending = self._wake_pending or wake
            start, self._started = not self._started, True
        if start:
            self.thread.start()
        if link is None:
            self._kick.set()  # connecting: the call is started and timed at once
        elif wake:
            try:
                link.call_threadsafe(self._on_wake)
            except ConnectionLost:
                pass  # the thread is ending; it hands on whatever is left in the inbox
        return True

    def stop(self) -> None:
        self._stopping = True
        self._kick.set()
        with self._lock:
            link = self._link
        if link is not None:
            try:
                link.call_threadsafe(lambda: None)
            except ConnectionLost:
                pass

    # -- on the I/O thread -----------------------------------------------------------------

    def _run(self) -> None:
        reason = "the client codec was closed"
        link: Link | None = None
        try:
            link = self._connect()
            if link is None:
                return  # stopped while connecting
            link.bind(self)
            run(client_setup_op(self._proto.reply_queue), link, no_wait)
            self._take_inbox()  # came while setting up: held, sent with the time they have left
            with self._lock:
                self._link = link
            self._on_wake()
            while not self._stopping:
                link.process(self._proto.time_left(link.now()))
                self._settle(self._proto.expire(link.now()))
        except RPCError as exc:
            reason = str(exc)
            logger.warning("client connection for %r lost: %s", self._proto.request_queue, exc)
            self._settle(self._proto.expire(self._connector.now()))  # past due: RPCTimeout
        except Exception as exc:
            reason = f"the I/O thread failed: {type(exc).__name__}"
            logger.exception("client I/O thread for %r failed", self._proto.request_queue)
        finally:
            with self._lock:
                self._link = None
                self._dead = True  # later calls go to the next connection's thread
                left = list(self._inbox)
                self._inbox.clear()
            self._settle(self._proto.fail_all(reason))
            if link is not None:
                run(close_op(), link, no_wait)
            if left:  # never started here: they get a connection of their own
                self._on_end(left)

    def _connect(self) -> Link | None:
        # The connection is made on a helper thread while this one keeps the deadlines of the
        # calls waiting for it, those that come meanwhile included: each ends by its own
        # deadline (RPCTimeout, no reply came), whatever the handshake does. Returns None
        # when the codec was closed meanwhile. Raises the connector's error.
        result: list[Link | BaseException] = []

        def attempt() -> None:
            try:
                result.append(self._connector.connect())
            except BaseException as exc:  # noqa: BLE001 - handed to the I/O thread
                result.append(exc)
            if self._stopping and result and not isinstance(result[0], BaseException):
                run(close_op(), result[0], no_wait)  # nobody will use it
            self._kick.set()

        self._take_inbox()  # the calls this attempt is for
        helper = threading.Thread(target=attempt, name=f"{self.thread.name}-connect", daemon=True)
        helper.start()
        while not result and not self._stopping:
            self._kick.clear()
            self._take_inbox()
            self._settle(self._proto.expire(self._connector.now()))
            if not result:
                self._kick.wait(self._proto.time_left(self._connector.now()))
        self._take_inbox()  # every call that waited for this attempt shares its outcome
        if self._stopping and not result:
            return None
        (outcome,) = result
        if isinstance(outcome, BaseException):
            raise outcome
        if self._stopping:
            run(close_op(), outcome, no_wait)
            return None
        return outcome

    def _on_wake(self) -> None:
        # Calls held while connecting go first: due ones end with RPCTimeout, the rest go out
        # with the time they have left. Then what was submitted since.
        link = self._link
        if link is not None and self._held:
            self._settle(self._proto.expire(link.now()))  # due before the link was there
            held, self._held = self._held, []
            now = link.now()
            for call in held:
                if isinstance(call.step, Publish):
                    call.step = self._proto.held(call.step, now)
                self._send(call, link)
        self._take_inbox()

    def _take_inbox(self) -> None:
        # Start every submitted call in the core (numbered, its deadline running): sent at
        # once on a link, else held until there is one.
        with self._lock:
            self._wake_pending = False
            submitted = list(self._inbox)
            self._inbox.clear()
        link = self._link
        for method, arg, timeout, now, future in submitted:
            if future.cancelled():
                continue  # cancelled before it was started
            call = _Call(future)
            call.op = call_op(self._proto, method, arg, now=now, timeout=timeout, token=call)
            try:
                call.step = next(call.op)
            except RPCError as exc:  # a bad argument: nothing was sent
                _set(future, error=exc)
                continue
            if link is None:
                self._held.append(call)
            else:
                self._send(call, link)

    def _send(self, call: _Call, link: Link) -> None:
        if not call.future.set_running_or_notify_cancel():
            call.op.close()  # cancelled before it was sent: the core cancels it
            return
        self._advance(call, link)

    def _advance(self, call: _Call, link: Link) -> None:
        step, call.step = call.step, None
        assert step is not None
        try:
            waiting = advance(call.op, link, step)
        except Exception as exc:  # noqa: BLE001 - the caller gets whatever ended its call
            call.future.set_exception(exc)
            return
        if isinstance(waiting, Finished):  # not as a rule: a call ends after its WaitFor
            call.future.set_result(waiting.value)

    def _settle(self, dones: list[CallDone[_Call]]) -> None:
        for done in dones:
            self._resume(done)

    def _resume(self, done: CallDone[_Call]) -> None:
        call = done.token
        try:
            if call.step is not None:  # ended before it was published: its publish fails
                if call in self._held:
                    self._held.remove(call)
                call.op.throw(done.error or ConnectionLost("the call ended unsent"))
            else:
                call.op.send(done)
        except StopIteration as stop:
            _set(call.future, result=stop.value)
        except Exception as exc:  # noqa: BLE001 - the caller gets whatever ended its call
            _set(call.future, error=exc)

    # -- the link's sink -------------------------------------------------------------------

    def delivered(self, delivery: Delivery) -> None:
        done = self._proto.receive(delivery)
        if done is not IGNORED:
            self._resume(done)

    def returned(self, returned: Returned) -> None:
        done = self._proto.returned(returned)
        if done is not IGNORED:
            self._resume(done)

    def closed(self, reason: str) -> None:
        with self._lock:
            self._dead = True  # from now on, calls go to the next connection's thread
        self._settle(self._proto.fail_all(reason))


def _set(future: Future, *, result: object = None, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass  # the caller cancelled it meanwhile


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
        self._proto: ClientProtocol[_Call] = new_protocol(*self._settings)  # validates now
        self.timeout = timeout
        self._lock = threading.Lock()
        self._io: _IoThread | None = None
        self._pid = os.getpid()
        self._closed = False

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
        self._submit([(method, arg, timeout, self._connector.now(), future)])
        return future

    def _submit(self, calls: list[Submitted]) -> None:
        for submitted in calls:
            while True:
                try:
                    io = self._io_thread()
                except RPCError as exc:
                    _set(submitted[4], error=exc)
                    break
                if io.submit(submitted):
                    break  # else that connection just ended: the next one takes it

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    def _future_positional(self, method: str, arg: object, timeout: float | None) -> Future:
        return self.call_async(method, arg, timeout=timeout)

    def _io_thread(self) -> _IoThread:
        if self._pid != os.getpid():
            # A forked child: the parent's I/O thread did not come along and its socket is
            # the parent's. Forget both (never close them from here) and start afresh.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._io = None
            self._proto = new_protocol(*self._settings)
        with self._lock:
            if self._closed:
                raise ConnectionLost("the client codec is closed")
            io = self._io
            if io is None or not io.alive:
                if io is not None:
                    self._proto = new_protocol(*self._settings)
                io = self._io = _IoThread(self._connector, self._proto, self._submit)
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
