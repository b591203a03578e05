"""Servers in background threads, so that one test can mix sync and async peers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import amqprpc
import amqprpc.sync
from tests.backends import close_async, connect_async


class Arith:
    """The service every peer serves: the Go examples' Mul/Div/Echo/Sleep, plus helpers."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> dict[str, int]:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def echo(self, arg: Any) -> Any:
        return arg

    async def sleep(self, args: dict[str, int]) -> bool:
        await asyncio.sleep(args["Ms"] / 1000)
        return True

    def who(self, arg: Any) -> str:
        return self.tag

    @amqprpc.wire_name("GetUserID")
    def get_user_id(self, uid: int) -> dict[str, int]:
        return {"id": uid}


class AsyncServerThread:
    """An async server on its own event loop in a thread, on a connection of `backend`'s kind
    (tests/backends.py: "aioamqp" or "aiormq")."""

    def __init__(
        self,
        url: str,
        queue: str,
        formatter: Any,
        service: object,
        *,
        backend: str = "aioamqp",
        **options: Any,
    ):
        self.url, self.queue, self.formatter = url, queue, formatter
        self.service, self.backend, self.options = service, backend, options
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> AsyncServerThread:
        self._thread.start()
        assert self._ready.wait(15), f"async server ({self.backend}) did not start"
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        connection = None
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            connection = await connect_async(self.backend, self.url)
            server = await amqprpc.server_codec(
                connection, self.queue, self.formatter, **self.options
            )
            server.register(self.service)
            await server.started()
            self.server: Any = server
        except Exception as exc:  # noqa: BLE001 - start() raises it in the test's thread
            self._error = exc
            if connection is not None:
                await close_async(connection)
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await server.close()
        await close_async(connection)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


class SyncServerThread:
    """A sync (pika) server whose serve_forever() runs in a thread."""

    def __init__(self, url: str, queue: str, formatter: Any, service: object, **options: Any):
        self.server = amqprpc.sync.server_codec(url, queue, formatter, **options)
        self.server.register(service)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.server.serve_forever()
        except amqprpc.RPCError as exc:
            self._error = exc

    def start(self) -> SyncServerThread:
        self._thread.start()
        assert self.server.wait_started(15), "sync server did not start"
        return self

    def stop(self) -> None:
        self.server.stop()
        self._thread.join(15)
        if self._error is not None:
            raise self._error
