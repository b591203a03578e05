"""A server in a process of its own, for tests that measure it from outside: its memory, or
what it does after a hostile message.

    python -m tests.integration.served URL QUEUE json|msgpack sync|aio|aio-aioamqp|aio-aiormq

prints "ready" once it consumes, and serves `Probe` until stdin closes. "aio" serves on
aioamqp; "aio-BACKEND" on that async client library (tests/backends.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

import amqprpc
import amqprpc.sync
from tests.backends import close_async, connect_async

FORMATS = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}


class Probe:
    """What the tests ask the served process."""

    def size(self, arg: Any) -> int:
        return len(arg) if hasattr(arg, "__len__") else 0

    def echo(self, arg: Any) -> Any:
        return arg

    def rss(self, arg: Any) -> int:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ready() -> None:
    """Tell the test that the server consumes."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def serve_sync(url: str, queue: str, formatter: Any) -> None:
    server = amqprpc.sync.server_codec(url, queue, formatter)
    server.register(Probe())
    threading.Thread(target=lambda: (sys.stdin.read(), server.stop()), daemon=True).start()
    threading.Thread(target=lambda: server.wait_started(30) and ready(), daemon=True).start()
    server.serve_forever()


async def serve_aio(url: str, queue: str, formatter: Any, backend: str) -> None:
    connection = await connect_async(backend, url)
    server = await amqprpc.server_codec(connection, queue, formatter)
    server.register(Probe())
    await server.started()
    ready()
    await asyncio.to_thread(sys.stdin.read)
    await server.close()
    await close_async(connection)


def main() -> None:
    url, queue, fmt, kind = sys.argv[1:5]
    if kind == "sync":
        serve_sync(url, queue, FORMATS[fmt])
    else:
        backend = kind.removeprefix("aio").removeprefix("-") or "aioamqp"
        asyncio.run(serve_aio(url, queue, FORMATS[fmt], backend))


if __name__ == "__main__":
    main()
