"""The async server codec: serves registered handlers from a request queue over aiormq or
aioamqp.

Thin by design (STYLE.md section 3): the core decodes, dispatches and builds replies and acks;
this module runs each request as its own task (the links hand deliveries over inside their
frame reader, so nothing may wait there), `async def` handlers on the loop and plain ones in a
thread pool, and performs the core's actions on the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from .._dispatch import Registry
from .._errors import ConnectionLost, RPCError, UsageError
from .._events import Action, Delivery, Invoke, Returned
from .._formatters import FormatterLike, as_formatter
from .._handlers import run_async_handler
from .._link import AsyncLink, no_wait, run_async
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
from .._urls import urls_of
from ._open import link_for

__all__ = ["AsyncServerCodec", "server_codec"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 64


class AsyncServerCodec(ServerView):
    """Serves one request queue. Consuming starts with the first `register()`."""

    _link: AsyncLink

    def __init__(
        self,
        link: AsyncLink,
        proto: ServerProtocol,
        *,
        queue: str,
        executor: Executor | None,
        max_workers: int | None,
        grace: float,
        cancel_on_deadline: bool = False,
        declare: DeclareProfile = "go",
        reconnect_to: list[str] | None = None,
        prefetch: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self._link = link
        self._reconnect_to = reconnect_to
        self._prefetch = prefetch
        self._proto = proto
        self._queue = queue
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=f"amqprpc-{queue}"
        )
        self._grace = grace
        self._cancel = cancel_on_deadline
        self._declare: DeclareProfile = declare
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._consuming: asyncio.Task[None] | None = None
        self._consumer_tag: str | None = None
        self._closing = False
        self._acks_due = False
        link.bind(self)
        # With reconnect: connects again whenever the connection goes, until close().
        self._ended = asyncio.Event()
        self._failure: RPCError | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._backoff = Backoff(now=link.now())
        if reconnect_to is not None:
            self._supervisor = self._loop.create_task(self._keep_connected())

    @property
    def is_open(self) -> bool:
        """Whether the server's channel is open (it closes with the connection)."""
        return self._link.is_open and not self._closing

    def register(self, target: object, *, name: str | None = None) -> list[str]:
        """Serve `target` (an instance's public methods, or a function); see Registry.register.

        Returns the wire names added. The first registration starts consuming the queue.
        Raises RegistrationError.
        """
        names = self._proto.registry.register(target, name=name)
        if self._consuming is None and not self._closing:
            self._consuming = self._loop.create_task(self._start())
        return names

    async def started(self) -> None:
        """Wait until the server consumes its queue. Raises UsageError before any register()."""
        if self._consuming is None:
            raise UsageError("nothing registered yet: register() starts the server")
        await asyncio.shield(self._consuming)

    async def _start(self) -> None:
        self._consumer_tag = await run_async(consume_op(self._queue), self._link, no_wait)

    async def wait_closed(self) -> None:
        """Wait until the server's channel closes (close(), a broker error, connection loss).

        A server made with `reconnect=True` outlives lost connections: this waits for
        `close()`, and raises the RPCError (a BrokerError, say) that stopped it from setting
        up its queue again.
        """
        if self._supervisor is None:
            await self._link.wait_closed()
            return
        await self._ended.wait()
        if self._failure is not None:
            raise self._failure

    async def _keep_connected(self) -> None:
        while True:
            await self._link.wait_closed()
            if self._closing:
                return
            logger.warning("server connection for %r lost; connecting again", self._queue)
            requeued = self._proto.channel_lost()
            if requeued:
                logger.warning("%d requests in progress go back to the queue", requeued)
            try:
                await self._connect_again()
            except Exception as exc:  # noqa: BLE001 - the end of serving, told to wait_closed
                logger.error("cannot serve %r again: %s; no longer serving", self._queue, exc)
                self._failure = exc if isinstance(exc, RPCError) else RPCError(repr(exc))
                self._ended.set()
                return

    async def _connect_again(self) -> None:
        assert self._reconnect_to is not None
        await run_async(close_op(), self._link, no_wait)
        backoff = self._backoff
        wait = backoff.lost(self._link.now())
        while True:
            await asyncio.sleep(wait)
            wait = 0.0
            try:
                link, _ = await link_for(self._reconnect_to)
                setup = server_setup_op(self._queue, prefetch=self._prefetch, declare=self._declare)
                try:
                    await run_async(setup, link, no_wait)
                except BaseException:
                    await run_async(close_op(), link, no_wait)
                    raise
            except ConnectionLost as exc:
                wait = backoff.delay()
                logger.warning("cannot connect (%s); trying again in %.1f s", exc, wait)
                continue
            self._link = link
            link.bind(self)
            backoff.connected(link.now())
            if self._consuming is not None:
                self._consuming = self._loop.create_task(self._start())
                self._consuming.add_done_callback(self._consume_failed)
            logger.warning("connected again; serving %r", self._queue)
            return

    def _consume_failed(self, consuming: asyncio.Task[None]) -> None:
        # Consuming again failed (the channel closed): the supervisor connects again.
        if not consuming.cancelled() and consuming.exception() is not None:
            logger.warning("could not consume %r again: %s", self._queue, consuming.exception())

    async def close(self, grace: float | None = None) -> None:
        """Stop consuming, let in-flight handlers finish within `grace` seconds, close."""
        if self._closing:
            return
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()  # and let it close what it was opening
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._consuming is not None and not self._consuming.done():
            with contextlib.suppress(RPCError):  # starting or resuming: let it end first
                await asyncio.shield(self._consuming)
        await run_async(cancel_consume_op(self._consumer_tag), self._link, no_wait)
        self._proto.start_drain(self._link.now(), self._grace if grace is None else grace)
        left = self._proto.drain_time_left(self._link.now())
        while left is not None and self._tasks:
            await asyncio.wait(set(self._tasks), timeout=left)
            left = self._proto.drain_time_left(self._link.now())
        if self._tasks:
            logger.warning("closing with %d requests unanswered", len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
        try:
            self._send_acks()
            await run_async(close_op(), self._link, no_wait)
            if self._own_executor:
                self._executor.shutdown(wait=False, cancel_futures=True)
        finally:
            self._ended.set()

    async def __aenter__(self) -> AsyncServerCodec:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    # -- the link's sink -------------------------------------------------------------------

    def delivered(self, delivery: Delivery) -> None:
        """A request arrived: perform what the core says now, run its handler as a task."""
        received = self._proto.receive(delivery)
        if received.actions:  # early acks, answers on the spot: out before any handler runs
            try:
                for action in received.actions:
                    self._link.perform_soon(action)
                self._link.flush()
            except RPCError as exc:
                logger.debug("could not answer a request: %s", exc)
        if received.invoke is not None:
            task = self._loop.create_task(self._handle(received.invoke))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._ack_soon()

    def returned(self, returned: Returned) -> None:
        """Replies are not mandatory, so nothing comes back; logged if it does."""
        logger.debug("a server publish came back: %s", returned.reply_text)

    def closed(self, reason: str) -> None:
        """The channel went away: no longer serving."""
        if not self._closing and self._supervisor is None:
            logger.error("server channel for %r closed; no longer serving", self._queue)

    def cancelled(self, consumer_tag: str) -> None:
        """The broker cancelled our consumer (the queue was deleted): declare the queue again
        and go on consuming."""
        if consumer_tag != self._consumer_tag or self._closing:
            return
        logger.warning("queue %r was deleted; declaring it again and consuming", self._queue)
        self._consumer_tag = None
        self._consuming = self._loop.create_task(self._resume())

    async def _resume(self) -> None:
        link = self._link
        try:
            resume = resume_op(self._queue, self._declare)
            self._consumer_tag = await run_async(resume, link, no_wait)
        except RPCError as exc:
            if not self._closing and link is self._link:
                logger.error("could not consume %r again: %s; no longer serving", self._queue, exc)
                await run_async(close_op(), link, no_wait)

    async def _handle(self, invoke: Invoke) -> None:
        try:
            if invoke.handler.is_async:
                outcome = await run_async_handler(invoke, self._proto, cancel=self._cancel)
            else:
                outcome = await self._loop.run_in_executor(
                    self._executor, call_handler, invoke, time.time
                )
            await self._perform(self._proto.finish(invoke, outcome))
        except RPCError as exc:  # the channel went away: the broker requeues unacked requests
            logger.warning("could not answer a request: %s", exc)
        finally:
            self._ack_soon()

    def _ack_soon(self) -> None:
        # The core batches acks (ServerProtocol.flush_acks): one pass per loop turn sends them.
        if not self._acks_due:
            self._acks_due = True
            self._loop.call_soon(self._send_acks)

    def _send_acks(self) -> None:
        self._acks_due = False
        try:
            for ack in self._proto.flush_acks():
                self._link.perform_soon(ack)
        except RPCError as exc:
            logger.debug("could not acknowledge: %s", exc)

    async def _perform(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            await self._link.perform(action)


async def server_codec(
    connection: Any,
    queue: str,
    formatter: FormatterLike,
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ack: AckMode = "late",
    executor: Executor | None = None,
    max_workers: int | None = None,
    grace: float = 10.0,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    registry: Registry | None = None,
    deadline_skew: float = DEFAULT_DEADLINE_SKEW,
    cancel_on_deadline: bool = False,
    declare: DeclareProfile = "go",
    max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
    reconnect: bool = False,
) -> AsyncServerCodec:
    """A server codec for request queue `queue` on an aiormq or aioamqp connection, or
    on a connection of its own to a URL, or to the first answering one of a list of URLs (a
    cluster's nodes, tried in order). With `reconnect` (URLs only), it connects again
    whenever its connection goes, trying the URLs in order with a growing delay, declares its
    queue again and goes on serving; requests it was running go back to the queue.

    Opens its own channel and declares the queue as `declare` says: "go" (default) exactly
    as Go peers do, so Go and Python servers can share it; "durable" (RabbitMQ 4.3 denies
    the Go declaration by default); "quorum" (clusters); "passive" (never create it).
    `max_concurrency` bounds requests in progress (basic.qos prefetch). `ack="late"`
    (default) acks each request after its reply is published, `"early"` on receipt, as
    go-amqprpc does. Plain handlers run in `executor` (default: a thread pool of
    `max_workers`). A request whose caller's deadline (sent by Python clients) has passed by
    more than `deadline_skew` seconds is not started; with `cancel_on_deadline`, an `async def`
    handler still running then is cancelled. Raises UsageError for bad options,
    ConnectionLost or BrokerError (e.g. 406 when the queue exists with other flags).
    """
    if not 1 <= max_concurrency <= 65535:
        raise UsageError(f"max_concurrency must be 1..65535, not {max_concurrency}")
    request_queue_declaration(queue, declare)  # a bad profile fails before connecting
    if reconnect and urls_of(connection) is None:
        raise UsageError(
            "reconnect=True needs a server that opens its own connection: pass a URL (or a "
            "list of them) instead of a connection"
        )
    proto = ServerProtocol(
        registry=registry if registry is not None else Registry(),
        formatter=as_formatter(formatter),
        ack=ack,
        max_body_size=max_body_size,
        queues=(queue,),
        deadline_skew=deadline_skew,
        max_redeliveries=max_redeliveries,
    )
    link, urls = await link_for(connection)
    try:
        await run_async(
            server_setup_op(queue, prefetch=max_concurrency, declare=declare), link, no_wait
        )
    except BaseException:
        await run_async(close_op(), link, no_wait)
        raise
    return AsyncServerCodec(
        link, proto, queue=queue, executor=executor, max_workers=max_workers, grace=grace,
        cancel_on_deadline=cancel_on_deadline, declare=declare, prefetch=max_concurrency,
        reconnect_to=urls if reconnect else None,
    )  # fmt: skip
