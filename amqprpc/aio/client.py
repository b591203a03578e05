"""The async client codec: calls from asyncio code over an aioamqp connection.

Thin by design (STYLE.md section 3): the core numbers, encodes, matches and times out calls;
this module supplies the event loop's clock, one future per call, and the channel.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from .._client import DEFAULT_TIMEOUT, ClientProtocol, ClientView
from .._errors import ConnectionLost
from .._events import IGNORED, CallDone, Delivery, Returned, WaitFor
from .._formatters import FormatterLike, as_formatter
from .._ops import call_op, client_setup_op
from .._proxy import ServiceProxy
from .._server import DEFAULT_MAX_BODY_SIZE
from ._link import AioLink, run

__all__ = ["AsyncClientCodec", "client_codec"]

logger = logging.getLogger(__name__)

_Future = asyncio.Future[CallDone[Any]]


class AsyncClientCodec(ClientView):
    """Calls to one request queue, with replies on this codec's own exclusive queue."""

    def __init__(self, link: AioLink, proto: ClientProtocol[_Future]) -> None:
        self._link = link
        self._proto = proto
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closing = False
        link.on_delivery = self._on_reply
        link.on_return = self._on_return
        link.on_wait = self._on_wait
        self._watcher = self._loop.create_task(self._watch())

    def client(self, service: str) -> ServiceProxy[Any]:
        """A proxy whose attributes are `service`'s remote methods: `await proxy.Mul(arg)`."""
        return ServiceProxy(service, self._call_positional)

    async def call(self, method: str, arg: object = None, *, timeout: float | None = None) -> Any:
        """Call `method` ("Service.Method", sent verbatim) with one argument.

        Returns the result. Raises RemoteError, RPCTimeout, Unroutable, ConnectionLost,
        ProtocolViolation, EncodeError or UsageError (all RPCError).
        """
        if self._closing or not self._link.is_open:
            raise ConnectionLost(f"{method}: the client codec is closed")
        future: _Future = self._loop.create_future()
        op = call_op(self._proto, method, arg, now=self._loop.time(), timeout=timeout, token=future)
        return await run(op, self._link)

    def _call_positional(self, method: str, arg: object, timeout: float | None) -> Any:
        return self.call(method, arg, timeout=timeout)

    async def close(self) -> None:
        """End pending calls with ConnectionLost and close the channel."""
        if self._closing:
            return
        self._closing = True
        self._fail_all("the client codec was closed")
        self._watcher.cancel()
        await self._link.close()

    async def __aenter__(self) -> AsyncClientCodec:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    # -- events from the link ----------------------------------------------------------

    def _on_reply(self, delivery: Delivery) -> None:
        done = self._proto.receive(delivery)
        if done is not IGNORED:
            _settle(done)

    def _on_return(self, returned: Returned) -> None:
        done = self._proto.returned(returned)
        if done is not IGNORED:
            _settle(done)

    def _on_wait(self, wait: WaitFor) -> None:
        # One timer for all calls, set for the earliest deadline the core knows of.
        if self._timer is None or wait.deadline < self._timer_at:
            self._arm(wait.deadline)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for done in self._proto.expire(self._loop.time()):
            _settle(done)
        following = self._proto.next_deadline()
        if following is not None:
            self._arm(following)

    async def _watch(self) -> None:
        await self._link.wait_closed()
        if not self._closing:
            logger.warning("client channel for %r closed; failing pending calls", self.queue)
            self._fail_all("the channel or connection closed")

    def _fail_all(self, reason: str) -> None:
        for done in self._proto.fail_all(reason):
            _settle(done)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _settle(done: CallDone[_Future]) -> None:
    if not done.token.done():  # the waiting task may have been cancelled meanwhile
        done.token.set_result(done)


async def client_codec(
    protocol: Any,
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
    ConnectionLost or BrokerError when the channel cannot be set up.
    """
    # The reply queue's name comes from the broker; the protocol is checked before that.
    proto: ClientProtocol[_Future] = ClientProtocol(
        request_queue=queue,
        reply_queue="unset",
        formatter=as_formatter(formatter),
        timeout=timeout,
        max_body_size=max_body_size,
    )
    link = await AioLink.open(protocol)
    try:
        proto.reply_queue = await run(client_setup_op(), link)
    except BaseException:
        await link.close()
        raise
    return AsyncClientCodec(link, proto)
