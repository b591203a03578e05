"""The async client codec: calls from asyncio code over an aiormq or aioamqp
connection.

Thin by design (STYLE.md section 3): the core numbers, encodes, matches and times out calls;
this module supplies one future per call, one loop timer set where the core says
(`ClientProtocol.alarm`), and the link.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from types import TracebackType
from typing import Any

from .._client import DEFAULT_TIMEOUT, ClientProtocol, ClientView, client_protocol
from .._deadline import request_deadline
from .._errors import ConnectionLost, RPCError, RPCTimeout
from .._events import IGNORED, CallDone, Delivery, Returned, WaitFor
from .._formatters import FormatterLike
from .._link import AsyncLink, no_wait, run_async
from .._ops import call_op, client_setup_op, close_op
from .._proxy import ServiceProxy
from .._server import DEFAULT_MAX_BODY_SIZE
from .._tracing import trace_context
from .._urls import urls_of
from ._open import link_for, open_link, url_backend

__all__ = ["AsyncClientCodec", "client_codec"]

logger = logging.getLogger(__name__)

_Future = asyncio.Future[CallDone[Any]]


class _NotConnected:
    # The link of a codec that connects by itself, before its first call.
    is_open = False
    blocked = False


class AsyncClientCodec(ClientView):
    """Calls to one request queue, with replies on this codec's own exclusive queue."""

    _link: AsyncLink | _NotConnected

    def __init__(
        self,
        link: AsyncLink | None,
        proto: ClientProtocol[_Future],
        urls: list[str] | None = None,
    ) -> None:
        self._link = _NotConnected() if link is None else link
        self._proto = proto
        self._urls = urls  # a codec given URLs connects on first use, and again after a loss
        self._connecting: asyncio.Task[AsyncLink] | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: Any = None
        self._closing = False
        self._setup: asyncio.Task[None] | None = None  # setting up a new reply queue
        if link is not None:
            link.bind(self)

    def client(self, service: str) -> ServiceProxy[Any, Any]:
        """A proxy whose attributes are `service`'s remote methods: `await proxy.Mul(arg)`."""
        return ServiceProxy(service, self._call_positional)

    async def call(self, method: str, arg: object = None, *, timeout: float | None = None) -> Any:
        """Call `method` ("Service.Method", sent verbatim) with one argument.

        Returns the result. Raises RemoteError, RPCTimeout, Unroutable, ConnectionLost,
        ProtocolViolation, EncodeError or UsageError (all RPCError).
        """
        link = self._link
        if self._closing or (not link.is_open and self._urls is None):
            raise ConnectionLost(f"{method}: the client codec is closed")
        if not link.is_open:
            started = self._loop.time()
            link = await self._connected(method, timeout)
            if timeout is not None:  # the call's deadline covers connecting
                timeout = max(timeout - (self._loop.time() - started), 0.001)
        assert not isinstance(link, _NotConnected)
        setup = self._setup
        if setup is not None:  # the reply queue was deleted: its successor first, in time
            limit = self._proto.timeout if timeout is None else timeout
            try:
                await asyncio.wait_for(asyncio.shield(setup), limit)
            except asyncio.TimeoutError:
                raise RPCTimeout(f"{method}: no new reply queue within {limit:g} s") from None
        future: _Future = self._loop.create_future()
        op = call_op(
            self._proto, method, arg, now=link.now(), timeout=timeout, token=future,
            wall=time.time(), inherited=request_deadline(), trace=trace_context(),
        )  # fmt: skip
        return await run_async(op, link, self._wait)

    async def _connected(self, method: str, timeout: float | None) -> AsyncLink:
        # Connect (one attempt for every call waiting, tried in the URLs' order), within the
        # call's timeout. Raises RPCTimeout, or the connection's ConnectionLost or BrokerError.
        limit = self._proto.timeout if timeout is None else timeout
        connecting = self._connecting
        if connecting is None or connecting.done():
            connecting = self._connecting = self._loop.create_task(self._connect())
            connecting.add_done_callback(_retrieved)
        try:
            return await asyncio.wait_for(asyncio.shield(connecting), limit)
        except asyncio.TimeoutError:
            raise RPCTimeout(f"{method}: not connected within {limit:g} s") from None
        except asyncio.CancelledError:
            if self._closing and connecting.cancelled():
                raise ConnectionLost(f"{method}: the client codec was closed") from None
            raise

    async def _connect(self) -> AsyncLink:
        assert self._urls is not None
        old = self._link
        if not isinstance(old, _NotConnected):  # the lost connection is ours: it goes
            await run_async(close_op(), old, no_wait)
        link, _ = await link_for(self._urls)
        proto: ClientProtocol[_Future] = client_protocol(
            self._proto.request_queue, self._proto.formatter, unique=uuid.uuid4().hex,
            timeout=self._proto.timeout, max_body_size=self._proto.max_body_size,
        )  # fmt: skip
        try:
            await run_async(client_setup_op(proto.reply_queue), link, no_wait)
        except BaseException:
            await run_async(close_op(), link, no_wait)
            raise
        self._proto, self._link = proto, link
        link.bind(self)
        logger.info("client for %r connected", proto.request_queue)
        return link

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    async def close(self) -> None:
        """End pending calls with ConnectionLost and close the channel."""
        if self._closing:
            return
        self._closing = True
        self._settle_all(self._proto.fail_all("the client codec was closed"))
        if self._timer is not None:
            self._timer.cancel()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()  # its calls end with ConnectionLost
            await asyncio.gather(self._connecting, return_exceptions=True)
        if not isinstance(self._link, _NotConnected):
            await run_async(close_op(), self._link, no_wait)

    async def __aenter__(self) -> AsyncClientCodec:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    # -- the pump's wait, and the one timer ----------------------------------------------

    @property
    def _live(self) -> AsyncLink:
        # The link calls go over: there is one whenever a call is in flight.
        link = self._link
        assert not isinstance(link, _NotConnected)
        return link

    def _wait(self, wait: WaitFor[_Future]) -> _Future:
        self._set_alarm()
        return wait.token

    def _set_alarm(self) -> None:
        when = self._proto.alarm()
        if when is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._live.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._settle_all(self._proto.expire(self._live.now()))
        self._set_alarm()

    # -- the link's sink -------------------------------------------------------------------

    def delivered(self, delivery: Delivery) -> None:
        """A reply arrived: the core says which call it ends."""
        done = self._proto.receive(delivery)
        if done is not IGNORED:
            _settle(done)

    def returned(self, returned: Returned) -> None:
        """A request came back unroutable: the core ends its call."""
        done = self._proto.returned(returned)
        if done is not IGNORED:
            _settle(done)

    def closed(self, reason: str) -> None:
        """The channel went away: every call in flight ends with ConnectionLost."""
        if not self._closing:
            logger.warning("client channel for %r closed; failing pending calls", self.queue)
            self._settle_all(self._proto.fail_all(reason))

    def cancelled(self, consumer_tag: str) -> None:
        """The reply queue was deleted: every call in flight ends with ConnectionLost, and a
        new reply queue is set up before the next call is published."""
        self._settle_all(self._proto.reply_queue_gone(uuid.uuid4().hex))
        self._setup = self._loop.create_task(self._set_up(self._proto.reply_queue))

    async def _set_up(self, reply_queue: str) -> None:
        try:
            await run_async(client_setup_op(reply_queue), self._live, no_wait)
        except RPCError as exc:  # the channel went: calls fail on it, with ConnectionLost
            logger.warning("could not set up a new reply queue: %s", exc)
        finally:
            if self._setup is asyncio.current_task():
                self._setup = None

    @staticmethod
    def _settle_all(dones: list[CallDone[_Future]]) -> None:
        for done in dones:
            _settle(done)


def _retrieved(task: asyncio.Task[Any]) -> None:
    # A connection attempt that every waiting call gave up on: its error is theirs, not news.
    if not task.cancelled():
        task.exception()


def _settle(done: CallDone[_Future]) -> None:
    if not done.token.done():  # the waiting task may have been cancelled meanwhile
        done.token.set_result(done)


async def client_codec(
    connection: Any,
    queue: str,
    formatter: FormatterLike,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> AsyncClientCodec:
    """A client codec for request queue `queue` on an aiormq or aioamqp connection, or on a
    connection of its own to a URL (or the first answering one of a list of a cluster's
    nodes), through aiormq when it is installed.

    On a caller's connection, it opens its own channel and an exclusive, auto-delete reply
    queue at once. Given URLs, it connects on the first call instead (within that call's
    timeout), and again on the next call after its connection is lost (the calls in flight
    then end with ConnectionLost). It does not check that a server runs (start-up order does
    not matter): a call to a queue that does not exist fails at once with Unroutable.
    `timeout` is the default per-call timeout in seconds. Raises UsageError for bad settings,
    ConnectionLost or BrokerError when the channel cannot be set up.
    """
    proto: ClientProtocol[_Future] = client_protocol(
        queue, formatter, unique=uuid.uuid4().hex, timeout=timeout, max_body_size=max_body_size
    )
    urls = urls_of(connection)
    if urls is not None:
        url_backend()  # a missing client library is a UsageError now, not at the first call
        return AsyncClientCodec(None, proto, urls)
    link = await open_link(connection)
    try:
        await run_async(client_setup_op(proto.reply_queue), link, no_wait)
    except BaseException:
        await run_async(close_op(), link, no_wait)
        raise
    return AsyncClientCodec(link, proto)
