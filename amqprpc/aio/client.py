"""The async client codec: calls from asyncio code over an aioamqp connection.

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
from ._open import open_link

__all__ = ["AsyncClientCodec", "client_codec"]

logger = logging.getLogger(__name__)

_Future = asyncio.Future[CallDone[Any]]


class AsyncClientCodec(ClientView):
    """Calls to one request queue, with replies on this codec's own exclusive queue."""

    _link: AsyncLink

    def __init__(self, link: AsyncLink, proto: ClientProtocol[_Future]) -> None:
        self._link = link
        self._proto = proto
        self._loop = asyncio.get_running_loop()
        self._timer: Any = None
        self._closing = False
        self._setup: asyncio.Task[None] | None = None  # setting up a new reply queue
        link.bind(self)

    def client(self, service: str) -> ServiceProxy[Any, Any]:
        """A proxy whose attributes are `service`'s remote methods: `await proxy.Mul(arg)`."""
        return ServiceProxy(service, self._call_positional)

    async def call(self, method: str, arg: object = None, *, timeout: float | None = None) -> Any:
        """Call `method` ("Service.Method", sent verbatim) with one argument.

        Returns the result. Raises RemoteError, RPCTimeout, Unroutable, ConnectionLost,
        ProtocolViolation, EncodeError or UsageError (all RPCError).
        """
        if self._closing or not self._link.is_open:
            raise ConnectionLost(f"{method}: the client codec is closed")
        setup = self._setup
        if setup is not None:  # the reply queue was deleted: its successor first, in time
            limit = self._proto.timeout if timeout is None else timeout
            try:
                await asyncio.wait_for(asyncio.shield(setup), limit)
            except asyncio.TimeoutError:
                raise RPCTimeout(f"{method}: no new reply queue within {limit:g} s") from None
        future: _Future = self._loop.create_future()
        op = call_op(
            self._proto, method, arg, now=self._link.now(), timeout=timeout, token=future,
            wall=time.time(), inherited=request_deadline(),
        )  # fmt: skip
        return await run_async(op, self._link, self._wait)

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
        await run_async(close_op(), self._link, no_wait)

    async def __aenter__(self) -> AsyncClientCodec:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    # -- the pump's wait, and the one timer ----------------------------------------------

    def _wait(self, wait: WaitFor[_Future]) -> _Future:
        self._set_alarm()
        return wait.token

    def _set_alarm(self) -> None:
        when = self._proto.alarm()
        if when is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._link.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._settle_all(self._proto.expire(self._link.now()))
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
            await run_async(client_setup_op(reply_queue), self._link, no_wait)
        except RPCError as exc:  # the channel went: calls fail on it, with ConnectionLost
            logger.warning("could not set up a new reply queue: %s", exc)
        finally:
            if self._setup is asyncio.current_task():
                self._setup = None

    @staticmethod
    def _settle_all(dones: list[CallDone[_Future]]) -> None:
        for done in dones:
            _settle(done)


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
    """A client codec for request queue `queue` on an aioamqp connection (`AmqpProtocol`).

    Opens its own channel and an exclusive, auto-delete reply queue. It does not check that a
    server runs (start-up order does not matter): a call to a queue that does not exist fails
    at once with Unroutable. `timeout` is the default per-call timeout in seconds. Raises
    UsageError for bad settings, ConnectionLost or BrokerError when the channel cannot be set
    up.
    """
    proto: ClientProtocol[_Future] = client_protocol(
        queue, formatter, unique=uuid.uuid4().hex, timeout=timeout, max_body_size=max_body_size
    )
    link = await open_link(connection)
    try:
        await run_async(client_setup_op(proto.reply_queue), link, no_wait)
    except BaseException:
        await run_async(close_op(), link, no_wait)
        raise
    return AsyncClientCodec(link, proto)
