"""The peers of the hostile tests: the service under attack and a raw reply sink (hostile
requests); a fake server that answers after junk, and the three client codecs (hostile replies).
The async server and client run on each async backend.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, async_servers, close_async, connect_async
from tests.integration.hostile_helpers import (
    entry,
    longstr,
    nested_array,
    pika_entry,
    raw,
    table,
)
from tests.integration.peers import SyncServerThread
from tests.integration.raw import blocking

# -- the service under attack ----------------------------------------------------------------


class Arith:
    """Served as `Arith`. Whatever is not served records, in `reached`, being run."""

    def __init__(self, arg: object = None) -> None:
        reached = getattr(self, "reached", None)
        if reached is not None:  # a second call: only a request could make it
            reached.append("__init__")
        self.reached: list[str] = reached if reached is not None else []

    def echo(self, arg: Any) -> Any:
        return arg

    def mul(self, args: Any) -> Any:
        return args["A"] * args["B"]

    def fail(self, arg: Any) -> Any:
        raise ValueError("")  # an empty text still makes a non-empty error header

    def unencodable(self, arg: Any) -> Any:
        return {"x": object()}

    def _secret(self, arg: Any) -> str:
        self.reached.append("_secret")
        return "secret"

    def __call__(self, arg: Any) -> str:
        self.reached.append("__call__")
        return "called"

    @property
    def prop(self) -> Callable[[Any], Any]:
        self.reached.append("prop")
        return self.echo


SERVERS: dict[str, Any] = {**async_servers(), "sync-server": SyncServerThread}


class ReplySink:
    """Two reply queues on one pika connection: a broker-named one, and one whose name is the
    full 255 bytes a shortstr holds. Collects what arrives on either."""

    def __init__(self, url: str) -> None:
        self.conn = blocking(url)
        self.channel = self.conn.channel()
        self.short = self.channel.queue_declare("", exclusive=True).method.queue
        name = f"amqprpc-test-hostile-{uuid.uuid4().hex}-"
        self.long = name + "x" * (255 - len(name))
        self.channel.queue_declare(self.long, exclusive=True)
        self.received: list[tuple[str, Any, bytes]] = []
        for queue in (self.short, self.long):
            self.channel.basic_consume(queue, functools.partial(self._got, queue), auto_ack=True)

    def _got(self, queue: str, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.received.append((queue, props, body))

    def publish(self, queue: str, body: bytes, properties: Any) -> None:
        self.channel.basic_publish("", queue, body, properties)

    def collect(self, count: int, timeout: float = 20.0) -> list[tuple[str, Any, bytes]]:
        """Everything received, once at least `count` replies arrived (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=max(0.0, deadline - time.monotonic()))
        got, self.received = self.received, []
        return got

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


# -- a fake server answering after junk, and the clients it answers --------------------------

BAD_ERRORS = {  # `error` headers that are not a str: each fails its own call, and only that one
    "int": pika_entry("error", 7),
    "bytes": pika_entry("error", b"boom"),
    "void": pika_entry("error", None),
    "bool": pika_entry("error", True),
    "list": pika_entry("error", ["boom"]),
    "table": pika_entry("error", {"text": "boom"}),
    "timestamp": pika_entry("error", datetime.datetime(2024, 1, 2)),
    "decimal": pika_entry("error", Decimal("1.5")),
    "u": entry("error", b"u", struct.pack(">H", 40000)),
    "float": entry("error", b"f", struct.pack(">f", 1.5)),
    "not-utf8": entry("error", b"S", longstr(b"\xff boom")),
    "huge-timestamp": entry("error", b"T", struct.pack(">Q", 2**64 - 1)),
    "deep": entry("error", b"A", nested_array(3000)),
}
REPLY_VARIANTS = ["ok", "bare", "garbage", "error", "empty-error", *BAD_ERRORS]
MALFORMED_IDS: dict[str, str | bytes | None] = {  # message_ids that name no call at all
    "absent": None,
    "empty": "",
    "word": "abc",
    "negative": "-1",
    "float": "1.0",
    "space": " 1",
    "arabic-digit": "\u0661",
    "hex": "0x1",
    "overflow": str(2**64),
    "long": "9" * 255,
    "not-utf8": b"\xff1",
}
UNKNOWN_BASE = 10**15  # call numbers no codec here ever issues


class FakeServer:
    """A raw pika consumer on the request queue that answers each request after junk.

    A request's argument says what to send first: `junk`, a list of [kind, n, variant] with
    kind "unknown" (an id never issued), "malformed" (MALFORMED_IDS[n]) or "duplicate" (the
    last call it answered on time); `variant` picks headers and body. The method says how to
    answer: Echo/EmptyError return `value`, BadError/Garbage/Remote break the contract, Late
    is answered only before the next request's junk. `sent` counts the junk actually sent.
    """

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self.url, self.queue, self.formatter = url, queue, formatter()
        self.sent: Counter[str] = Counter()
        self.answered: list[tuple[str, str]] = []  # (reply queue, message_id), on time
        self.late: list[tuple[str, str, str]] = []
        self.failure: BaseException | None = None
        self._ready = threading.Event()
        self._conn: Any = None
        self._channel: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(15), "fake server did not start"
        return self

    def _run(self) -> None:
        try:
            self._conn = blocking(self.url)
            self._channel = self._conn.channel()
            self._channel.queue_declare(self.queue)  # Go's flags: pika's defaults
            self._channel.basic_consume(self.queue, self._on_request, auto_ack=True)
            self._ready.set()
            self._channel.start_consuming()
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            self._ready.set()
            if self._conn is not None and self._conn.is_open:
                self._conn.close()

    def stop(self) -> None:
        if self._conn is not None and self._conn.is_open:
            self._conn.add_callback_threadsafe(self._channel.stop_consuming)
        self._thread.join(15)
        assert self.failure is None, self.failure

    def _reply(self, queue: str, method: str, message_id: Any, variant: str, value: Any) -> None:
        headers, body = None, self.formatter.pack(value)
        if variant == "garbage":
            body = b"\xc1\xff"  # neither JSON nor msgpack (0xc1 is never used)
        elif variant in ("error", "empty-error"):
            headers = table(pika_entry("error", "junk" if variant == "error" else ""))
        elif variant == "remote":
            headers = table(pika_entry("error", "boom"), pika_entry("error_type", 5))
        elif variant in BAD_ERRORS:
            headers, body = table(BAD_ERRORS[variant]), self.formatter.pack({})
        if variant == "bare":  # no property but message_id (with "absent": none at all)
            props = raw(message_id=message_id)
        else:
            props = raw(
                correlation_id=queue, reply_to=method, message_id=message_id, headers=headers
            )
        self._channel.basic_publish("", queue, body, props)

    def _on_request(self, channel: Any, deliver: Any, props: Any, body: bytes) -> None:
        arg = self.formatter.unpack(body)
        queue, method, call = props.correlation_id, props.reply_to, props.message_id
        for late_queue, late_method, late_call in self.late:
            self._reply(late_queue, late_method, late_call, "ok", "too late")
            self.sent["late"] += 1
        self.late.clear()
        for kind, n, variant in arg.get("junk", []):
            if kind == "unknown":
                self._reply(queue, method, str(UNKNOWN_BASE + n), variant, "unknown")
            elif kind == "malformed":
                self._reply(queue, method, MALFORMED_IDS[n], variant, "malformed")
            else:
                done = [c for q, c in self.answered if q == queue]
                if not done:
                    continue  # nothing answered yet: nothing to duplicate
                self._reply(queue, method, done[-1], variant, "duplicate")
            self.sent[kind] += 1
        name = method.rpartition(".")[2]
        if name == "Late":
            self.late.append((queue, method, call))
            return
        variant = {"Echo": "ok", "EmptyError": "empty-error", "Garbage": "garbage"}.get(name)
        if name == "BadError":
            variant = arg["variant"]
        self._reply(queue, method, call, variant or "remote", arg.get("value"))
        self.answered.append((queue, call))


class AsyncClient:
    """An async client codec on its own event loop, on a connection of `backend`'s kind, called
    from the test's thread."""

    def __init__(self, url: str, queue: str, formatter: Any, *, backend: str) -> None:
        self.backend = backend
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(url, queue, formatter),), daemon=True
        )
        self._thread.start()
        assert self._ready.wait(15), "async client did not start"
        self.codec: Any = getattr(self, "codec", None)
        assert self.codec is not None, "async client could not connect"

    async def _main(self, url: str, queue: str, formatter: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            connection = await connect_async(self.backend, url)
            try:
                self.codec = await amqprpc.client_codec(connection, queue, formatter, timeout=10)
                self._ready.set()
                await self._stop.wait()
                await self.codec.close()
            finally:
                await close_async(connection)
        finally:
            self._ready.set()

    def calls(self, calls: list[tuple[str, Any]], timeout: float) -> list[Any]:
        async def gather() -> list[Any]:
            return await asyncio.gather(
                *(self.codec.call(m, a, timeout=timeout) for m, a in calls), return_exceptions=True
            )

        return asyncio.run_coroutine_threadsafe(gather(), self._loop).result(60)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


class CallerClient:
    """A sync client codec on the test's own BlockingConnection: one call at a time."""

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self.connection = blocking(url)
        self.codec: Any = amqprpc.sync.client_codec(self.connection, queue, formatter, timeout=10)

    def calls(self, calls: list[tuple[str, Any]], timeout: float) -> list[Any]:
        outcomes: list[Any] = []
        for method, arg in calls:
            try:
                outcomes.append(self.codec.call(method, arg, timeout=timeout))
            except amqprpc.RPCError as exc:
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        self.codec.close()
        if self.connection.is_open:
            self.connection.close()


class ThreadSafeClient:
    """A thread-safe sync client codec: all calls in flight at once, as futures."""

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self.codec: Any = amqprpc.sync.client_codec(url, queue, formatter, timeout=10)

    def calls(self, calls: list[tuple[str, Any]], timeout: float) -> list[Any]:
        futures = [self.codec.call_async(m, a, timeout=timeout) for m, a in calls]
        concurrent.futures.wait(futures, 60)
        return [f.exception(timeout=0) or f.result() for f in futures]

    def close(self) -> None:
        self.codec.close()


CLIENTS: dict[str, Any] = {
    **{
        f"async-client-{backend}": functools.partial(AsyncClient, backend=backend)
        for backend in ASYNC_BACKENDS
    },
    "caller-client": CallerClient,
    "thread-safe-client": ThreadSafeClient,
}
