"""The thread-safe client's I/O thread: one connection, and every call in flight on it.

Owns the only thread that touches the connection's link and core. Callers hand it their calls
(`submit`); it starts each through `call_op`, connects on first use (on a helper thread, while
it keeps the deadlines of the calls waiting), publishes, and resumes each call's op with the
CallDone the core hands it (a reply, a return, `expire`, `fail_all`). Calls that come too late
for a connection that ends are handed back to the codec for the next one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from .._client import ClientProtocol
from .._errors import BrokerError, ConnectionLost, RPCError
from .._events import IGNORED, Action, CallDone, Delivery, Publish, Returned, WaitFor
from .._link import Connector, Finished, Link, advance, no_wait, run
from .._ops import Op, call_op, client_setup_op, close_op
from .._tracing import Caller

__all__ = ["Call", "Future", "IoThread", "Submitted", "settle_future"]

logger = logging.getLogger(__name__)

Future = concurrent.futures.Future[Any]
# method, arg, timeout, when (the link's clock), its future, when (Unix time), the deadline
# it inherits from a request being served and its trace context (both read on the caller's
# thread: `request_deadline`, `trace_context`)
Submitted = tuple[
    str, object, "float | None", float, Future, float, "float | None", "Caller | None"
]


class Call:
    """The token of one call on the I/O thread: its op, where the op stands, its future."""

    __slots__ = ("future", "op", "step")

    op: Op[Call, object]

    def __init__(self, future: Future) -> None:
        self.future = future
        self.step: Action | WaitFor[Call] | None = None  # None: waiting for its CallDone


class IoThread:
    """One connection's I/O loop. Every touch of the link and of the core happens on it."""

    def __init__(
        self,
        connector: Connector,
        proto: ClientProtocol[Call],
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
        self._held: list[Call] = []  # started, not yet published (before connecting)
        self._kick = threading.Event()  # wakes the I/O thread while it has no link yet
        self._started = False
        self._dead = False
        self._stopping = False
        self._setup_due = False  # the reply queue was deleted: calls wait for its successor

    @property
    def alive(self) -> bool:
        return not self._dead

    @property
    def blocked(self) -> bool:
        """Whether the broker has blocked the connection (read from any thread)."""
        link = self._link
        return link is not None and link.blocked

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
                if self._setup_due:
                    self._setup_due = False  # a cancel during the setup sets it again
                    run(client_setup_op(self._proto.reply_queue), link, no_wait)
                    if not self._setup_due:
                        self._on_wake()  # what was held meanwhile goes out
        except RPCError as exc:
            reason = str(exc)
            logger.warning("client connection for %r lost: %s", self._proto.request_queue, exc)
            self._settle(self._proto.expire(self._connector.now()))  # past due: RPCTimeout
            if link is None and isinstance(exc, BrokerError):  # it refused the login or vhost
                self._settle(self._proto.refused(exc))
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
        for method, arg, timeout, now, future, wall, inherited, trace in submitted:
            if future.cancelled():
                continue  # cancelled before it was started
            call = Call(future)
            call.op = call_op(
                self._proto, method, arg, now=now, timeout=timeout, token=call, wall=wall,
                inherited=inherited, trace=trace,
            )  # fmt: skip
            try:
                call.step = next(call.op)
            except RPCError as exc:  # a bad argument: nothing was sent
                settle_future(future, error=exc)
                continue
            if link is None or self._setup_due:
                self._held.append(call)
            else:
                self._send(call, link)

    def _send(self, call: Call, link: Link) -> None:
        if not call.future.set_running_or_notify_cancel():
            call.op.close()  # cancelled before it was sent: the core cancels it
            return
        self._advance(call, link)

    def _advance(self, call: Call, link: Link) -> None:
        step, call.step = call.step, None
        assert step is not None
        try:
            waiting = advance(call.op, link, step)
        except Exception as exc:  # noqa: BLE001 - the caller gets whatever ended its call
            call.future.set_exception(exc)
            return
        if isinstance(waiting, Finished):  # not as a rule: a call ends after its WaitFor
            call.future.set_result(waiting.value)

    def _settle(self, dones: list[CallDone[Call]]) -> None:
        for done in dones:
            self._resume(done)

    def _resume(self, done: CallDone[Call]) -> None:
        call = done.token
        try:
            if call.step is not None:  # ended before it was published: its publish fails
                if call in self._held:
                    self._held.remove(call)
                call.op.throw(done.error or ConnectionLost("the call ended unsent"))
            else:
                call.op.send(done)
        except StopIteration as stop:
            settle_future(call.future, result=stop.value)
        except Exception as exc:  # noqa: BLE001 - the caller gets whatever ended its call
            settle_future(call.future, error=exc)

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

    def cancelled(self, consumer_tag: str) -> None:
        # The reply queue was deleted: calls in flight fail; new ones wait for its successor.
        self._settle(self._proto.reply_queue_gone(uuid.uuid4().hex))
        self._setup_due = True


def settle_future(
    future: Future, *, result: object = None, error: BaseException | None = None
) -> None:
    """Complete `future` with `result` or `error`, unless its caller cancelled it."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass  # the caller cancelled it meanwhile
