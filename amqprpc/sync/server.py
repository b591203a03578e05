"""The sync server codec: serves registered handlers from a request queue over pika.

`serve_forever()` runs pika's I/O loop on the calling thread; handlers run on a worker pool
(and `async def` ones on an event loop the server owns), so a slow handler never starves
heartbeats or other requests. Results come back to the I/O thread through pika's one
thread-safe call. Thin by design (STYLE.md section 3): the core decodes, dispatches and builds
replies and acks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .._dispatch import Registry
from .._errors import BrokerError, ConnectionLost, RPCError, UsageError
from .._events import Action, Delivery, Invoke, Outcome, Returned
from .._formatters import FormatterLike, as_formatter
from .._handlers import cancel_other_tasks, run_async_handler
from .._link import Link, no_wait, run
from .._ops import (
    DeclareProfile,
    cancel_consume_op,
    close_op,
    consume_op,
    request_queue_declaration,
    resume_op,
    server_setup_op,
)
from .._server import (
    DEFAULT_DEADLINE_SKEW,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_REDELIVERIES,
    AckMode,
    ServerProtocol,
    call_handler,
)
from .._serving import Backoff, ServerView
from ._link import link_for

_UNWIND_TIME = 5.0  # how long cancelled async handlers get to unwind when the server closes

__all__ = ["ServerCodec", "server_codec"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 64


class ServerCodec(ServerView):
    """Serves one request queue from the thread that calls `serve_forever()`."""

    _link: Link

    def __init__(
        self,
        link: Link,
        proto: ServerProtocol,
        *,
        queue: str,
        max_workers: int | None,
        grace: float,
        owned: bool,
        cancel_on_deadline: bool = False,
        declare: DeclareProfile = "go",
        reconnect_to: object = None,
        prefetch: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self._link = link
        self._reconnect_to = reconnect_to  # what a server that owns its connection came from
        self._prefetch = prefetch
        self._proto = proto
        self._queue = queue
        self._grace = grace
        self._cancel = cancel_on_deadline
        self._declare: DeclareProfile = declare
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=f"amqprpc-{queue}"
        )
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._athread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._serving = threading.Lock()
        self._closed = False
        # A caller's BlockingConnection belongs to the thread that made it (pika is not
        # thread-safe); a connection the codec opened may be served from any one thread.
        self._owner = None if owned else threading.get_ident()
        self._consumer_tag: str | None = None
        self._resume_due = False  # the broker cancelled our consumer: consume again
        self._backoff = Backoff(now=link.now())
        link.bind(self)

    def register(self, target: object, *, name: str | None = None) -> list[str]:
        """Serve `target` (an instance's public methods, or a function). Returns the wire names
        added. Raises RegistrationError. Register before `serve_forever()`."""
        return self._proto.registry.register(target, name=name)

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until `serve_forever()` consumes its queue. Returns False on a timeout."""
        return self._started.wait(timeout)

    def stop(self) -> None:
        """Ask `serve_forever()` to stop and drain; callable from any thread or signal handler."""
        self._stop.set()
        if self._link.is_open:
            try:
                self._link.call_threadsafe(lambda: None)  # wake the I/O loop
            except ConnectionLost:
                pass

    def serve_forever(self, *, reconnect: bool = False) -> None:
        """Consume and answer requests until `stop()` (or SIGINT/SIGTERM on the main thread),
        then stop consuming, let in-flight handlers finish within the grace period, and close.

        When the connection or channel is lost, raises ConnectionLost (after logging it); or,
        with `reconnect` (a server made from a URL or a list of them), connects again, trying
        the URLs in order with a growing delay between rounds, declares its queue again and
        goes on serving. Requests it was running go back to the queue (ack="late") and are
        delivered again; their replies still go out if they finish after the new connection
        is up. Raises UsageError when nothing is registered, when already serving or closed,
        or for `reconnect` on a caller's connection; BrokerError when the queue cannot be
        declared again.
        """
        if not len(self._proto.registry):
            raise UsageError("nothing registered: register() handlers before serving")
        if self._owner is not None and self._owner != threading.get_ident():
            raise UsageError(
                "this server runs on a caller's pika BlockingConnection, which belongs to the "
                "thread that created it; serve from that thread, or pass a URL"
            )
        if reconnect and self._reconnect_to is None:
            raise UsageError(
                "reconnect=True needs a server that opens its own connection: make it from a "
                "URL (or a list of them) instead of a BlockingConnection"
            )
        if self._closed or not self._serving.acquire(blocking=False):
            raise UsageError("this server is already serving, or closed")
        restore = self._install_signal_handlers()
        try:
            while True:
                try:
                    self._serve()
                    return
                except (ConnectionLost, BrokerError) as exc:  # a broker-closed channel too
                    if not reconnect or self._stop.is_set():
                        logger.error(
                            "server connection for %r lost; no longer serving", self._queue
                        )
                        raise
                    logger.warning("server connection for %r lost (%s)", self._queue, exc)
                if not self._connect_again():
                    return  # stopped meanwhile
        finally:
            restore()
            self._shutdown()
            self._serving.release()

    def _serve(self) -> None:
        self._consumer_tag = run(consume_op(self._queue), self._link, no_wait)
        self._started.set()
        logger.info("serving %d methods on %r", len(self._proto.registry), self._queue)
        while not self._stop.is_set():
            self._link.process(None)  # stop() and answers wake it
            self._send_acks()
            if self._resume_due and not self._stop.is_set():
                self._resume_due = False
                resume = resume_op(self._queue, self._declare)
                self._consumer_tag = run(resume, self._link, no_wait)
        self._drain()

    def _connect_again(self) -> bool:
        # Until connected and set up again, or stopped (then returns False).
        requeued = self._proto.channel_lost()
        self._resume_due = False  # the new connection consumes anyway
        if requeued:
            logger.warning("%d requests in progress go back to the queue", requeued)
        with contextlib.suppress(RPCError):
            run(close_op(), self._link, no_wait)
        backoff = self._backoff
        wait = backoff.lost(self._link.now())
        while not self._stop.wait(wait):
            wait = 0.0
            try:
                link, _ = link_for(self._reconnect_to)
                try:
                    setup = server_setup_op(
                        self._queue, prefetch=self._prefetch, declare=self._declare
                    )
                    run(setup, link, no_wait)
                except BaseException:
                    run(close_op(), link, no_wait)
                    raise
            except ConnectionLost as exc:
                wait = backoff.delay()
                logger.warning("cannot connect (%s); trying again in %.1f s", exc, wait)
                continue
            if self._stop.is_set():  # stopped while connecting: do not start consuming
                run(close_op(), link, no_wait)
                return False
            self._link = link
            link.bind(self)
            backoff.connected(link.now())
            logger.warning("connected again; serving %r", self._queue)
            return True
        return False

    def _drain(self) -> None:
        run(cancel_consume_op(self._consumer_tag), self._link, no_wait)
        self._proto.start_drain(self._link.now(), self._grace)
        while (left := self._proto.drain_time_left(self._link.now())) is not None:
            self._link.process(left)
            self._send_acks()
        if self._proto.in_flight:
            logger.warning("closing with %d requests unanswered", self._proto.in_flight)

    def close(self) -> None:
        """Stop serving (if serving) and close the channel, and the connection if it is ours."""
        self.stop()
        if self._serving.acquire(blocking=False):  # not serving: nothing else will close it
            try:
                self._shutdown()
            finally:
                self._serving.release()

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        run(close_op(), self._link, no_wait)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._aloop is not None and self._athread is not None:
            self._stop_handler_loop(self._aloop, self._athread)

    def _stop_handler_loop(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        # The grace period is over: cancel the `async def` handlers still running and let
        # them unwind on their own loop (a task left pending when its loop closes is
        # destroyed unfinished, its `finally` blocks run by the garbage collector).
        cancelled = asyncio.run_coroutine_threadsafe(cancel_other_tasks(), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            cancelled.result(_UNWIND_TIME)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_UNWIND_TIME)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> ServerCodec:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    # -- on the I/O thread: the link's sink, and the answers ----------------------------

    def delivered(self, delivery: Delivery) -> None:
        """A request arrived: perform what the core says now, run its handler on a worker."""
        received = self._proto.receive(delivery)
        if received.actions:  # early acks, answers on the spot: out before any handler runs
            self._perform(received.actions)
            self._link.flush()
        invoke = received.invoke
        if invoke is None:
            return
        done = functools.partial(self._handler_done, invoke)
        if invoke.handler.is_async:
            self._event_loop()
            assert self._aloop is not None
            asyncio.run_coroutine_threadsafe(
                run_async_handler(invoke, self._proto, cancel=self._cancel), self._aloop
            ).add_done_callback(done)
        else:
            self._executor.submit(call_handler, invoke, time.time).add_done_callback(done)

    def returned(self, returned: Returned) -> None:
        """Replies are not mandatory, so nothing comes back; logged if it does."""
        logger.debug("a server publish came back: %s", returned.reply_text)

    def closed(self, reason: str) -> None:
        """The channel went away; `serve_forever` raises ConnectionLost (the link's)."""
        logger.debug("server channel for %r closed: %s", self._queue, reason)

    def cancelled(self, consumer_tag: str) -> None:
        """The broker cancelled our consumer (the queue was deleted): `serve_forever`
        declares the queue again and goes on consuming."""
        if consumer_tag == self._consumer_tag and not self._stop.is_set():
            logger.warning("queue %r was deleted; declaring it again and consuming", self._queue)
            self._consumer_tag = None
            self._resume_due = True

    def _finish(self, invoke: Invoke, outcome: Outcome) -> None:
        self._perform(self._proto.finish(invoke, outcome))

    def _send_acks(self) -> None:
        # The core batches acks (ServerProtocol.flush_acks): one pass per round of I/O.
        self._perform(self._proto.flush_acks())

    def _perform(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            self._link.perform(action)

    # -- on a worker thread or the handlers' event loop ----------------------------------

    def _handler_done(self, invoke: Invoke, future: concurrent.futures.Future[Outcome]) -> None:
        if future.cancelled():
            return  # shutting down: unanswered, unacked; the broker redelivers it
        try:
            self._link.call_threadsafe(functools.partial(self._finish, invoke, future.result()))
        except RPCError as exc:
            logger.warning("could not answer a request: %s", exc)

    def _event_loop(self) -> None:
        if self._aloop is None:
            loop = asyncio.new_event_loop()
            self._athread = threading.Thread(
                target=loop.run_forever, name=f"amqprpc-{self._queue}-async", daemon=True
            )
            self._aloop = loop
            self._athread.start()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def server_codec(
    connection: Any,
    queue: str,
    formatter: FormatterLike,
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    max_workers: int | None = None,
    ack: AckMode = "late",
    grace: float = 10.0,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    registry: Registry | None = None,
    deadline_skew: float = DEFAULT_DEADLINE_SKEW,
    cancel_on_deadline: bool = False,
    declare: DeclareProfile = "go",
    max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
) -> ServerCodec:
    """A sync server codec for request queue `queue`.

    `connection` is a pika `BlockingConnection` (serve from the thread that made it) or a URL
    / pika parameters, or a list of them tried in order (the codec opens and closes its own
    connection). Declares the queue as
    `declare` says ("go", as Go peers do, by default). `max_concurrency` bounds requests in
    progress (basic.qos prefetch); handlers run on a pool of `max_workers` threads; `ack`,
    `deadline_skew`, `cancel_on_deadline` and `declare` as for the async server. Raises
    UsageError, ConnectionLost or BrokerError.
    """
    if not 1 <= max_concurrency <= 65535:
        raise UsageError(f"max_concurrency must be 1..65535, not {max_concurrency}")
    request_queue_declaration(queue, declare)  # a bad profile fails before connecting
    proto = ServerProtocol(
        registry=registry if registry is not None else Registry(),
        formatter=as_formatter(formatter),
        ack=ack,
        max_body_size=max_body_size,
        queues=(queue,),
        deadline_skew=deadline_skew,
        max_redeliveries=max_redeliveries,
    )
    link, owned = link_for(connection)
    try:
        run(server_setup_op(queue, prefetch=max_concurrency, declare=declare), link, no_wait)
    except BaseException:
        run(close_op(), link, no_wait)
        raise
    return ServerCodec(
        link, proto, queue=queue, max_workers=max_workers, grace=grace, owned=owned,
        cancel_on_deadline=cancel_on_deadline, declare=declare, prefetch=max_concurrency,
        reconnect_to=connection if owned else None,
    )  # fmt: skip
