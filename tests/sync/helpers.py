"""A sync server on the in-memory broker, served from a thread of its own."""

from __future__ import annotations

import threading
import time
from typing import Any

import amqprpc
import amqprpc.sync
from amqprpc.testing import MemoryBroker

QUEUE = "testrpc"


class Arith:
    """The service of the adapter tiers."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.seen: list[object] = []
        self.entered = threading.Semaphore(0)

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> int:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return args["A"] // args["B"]

    def echo(self, arg: object) -> object:
        return arg

    def held(self, arg: object) -> object:
        # Waits until the test opens the gate: a request in progress.
        self.seen.append(arg)
        self.entered.release()
        assert self.gate.wait(10)
        return arg

    def sleep(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True


class ServerThread:
    """`amqprpc.sync.server_codec(broker, ...)` serving `service` until `stop()`."""

    def __init__(self, broker: MemoryBroker, service: object, **options: Any) -> None:
        self.codec = amqprpc.sync.server_codec(broker, QUEUE, amqprpc.Json, **options)
        self.codec.register(service, name="Arith")
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.codec.wait_started(5), self.error

    def _serve(self) -> None:
        try:
            self.codec.serve_forever()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc

    def stop(self) -> None:
        self.codec.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
