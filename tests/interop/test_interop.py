"""Go and Python, clients and servers, sync and async, JSON and MsgPack: the 18-cell matrix,
and Go and Python servers sharing one queue."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aioamqp
import pytest

import amqprpc
import amqprpc.sync
from tests.integration.peers import Arith, AsyncServerThread, SyncServerThread
from tests.integration.raw import queue_counts, wait_until
from tests.interop.conftest import RESULTS

FORMATS = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}
LOAD_CALLS = 1000
IN_FLIGHT = 100


class GoServer:
    """The Go peer serving Arith on a queue, as a child process."""

    def __init__(
        self, binary: Path, url: str, queue: str, fmt: str, declare: str = "go"
    ) -> None:
        command = [str(binary), "-mode", "server", "-url", url, "-queue", queue, "-format", fmt,
                   "-declare", declare]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)


def start_server(
    kind: str, binary: Path, url: str, queue: str, fmt: str, declare: str = "go"
) -> Any:
    if kind == "go":
        return GoServer(binary, url, queue, fmt, declare)
    peer_class = AsyncServerThread if kind == "py-async" else SyncServerThread
    return peer_class(url, queue, FORMATS[fmt], Arith(), declare=declare).start()


def nested(fmt: str) -> dict[str, Any]:
    value: dict[str, Any] = {
        "s": "héllo",
        "i": 2**40,
        "f": 1.5,
        "b": True,
        "n": None,
        "l": [1, "x"],
        "m": {"k": "v"},
    }
    if fmt == "msgpack":
        value["y"] = b"\x00\x01\xff"  # bin stays bin through a Go interface{}
    return value


class Fails:
    """An expected RemoteError: with exactly `text`, or any non-empty text when None."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text


def suite(fmt: str) -> list[tuple[str, Any, Any]]:
    """What every client must see from every server: (method, argument, expected)."""
    return [
        ("Arith.Mul", {"A": 6, "B": 7}, 42),
        ("Arith.Div", {"A": 7, "B": 2}, {"Quo": 3, "Rem": 1}),
        ("Arith.Div", {"A": 1, "B": 0}, Fails("divide by zero")),
        ("Arith.Nope", 1, Fails("rpc: can't find method Arith.Nope")),
        ("Arith.GetUserID", 5, {"id": 5}),
        ("Arith.Echo", nested(fmt), nested(fmt)),
        ("Arith.Mul", "six", Fails()),  # the wrong type: an error reply...
        ("Arith.Mul", {"A": 2, "B": 3}, 6),  # ...and the server keeps serving
    ]


def verify(method: str, expected: Any, outcome: Any) -> None:
    if isinstance(expected, Fails):
        assert isinstance(outcome, amqprpc.RemoteError), (method, outcome)
        assert str(outcome), method
        assert expected.text is None or str(outcome) == expected.text, (method, outcome)
    else:
        assert outcome == expected, (method, outcome)


async def async_client_cell(url: str, queue: str, fmt: str) -> float:
    transport, protocol = await aioamqp.from_url(url)
    async with await amqprpc.client_codec(protocol, queue, FORMATS[fmt], timeout=10) as codec:
        for method, arg, expected in suite(fmt):
            try:
                outcome = await codec.call(method, arg)
            except amqprpc.RemoteError as err:
                outcome = err
            verify(method, expected, outcome)
        arith = codec.client("Arith")
        assert await arith.mul({"A": 2, "B": 5}) == 10  # snake_case reaches Go's Mul
        assert await arith.GetUserID(7) == {"id": 7}  # Go's initialism, called verbatim
        mul = arith.Mul
        semaphore = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with semaphore:
                assert await mul({"A": i, "B": 3}) == 3 * i

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(LOAD_CALLS)))
        elapsed = time.perf_counter() - start
    await protocol.close()
    transport.close()
    return LOAD_CALLS / elapsed


def sync_client_cell(url: str, queue: str, fmt: str) -> float:
    with amqprpc.sync.client_codec(url, queue, FORMATS[fmt], timeout=10) as codec:
        for method, arg, expected in suite(fmt):
            try:
                outcome = codec.call(method, arg)
            except amqprpc.RemoteError as err:
                outcome = err
            verify(method, expected, outcome)
        arith = codec.client("Arith")
        assert arith.mul({"A": 2, "B": 5}) == 10  # snake_case reaches Go's Mul
        assert arith.GetUserID(7) == {"id": 7}  # Go's initialism, called verbatim
        mul = arith.Mul
        window: collections.deque[tuple[int, Future[Any]]] = collections.deque()
        start = time.perf_counter()
        for i in range(LOAD_CALLS):
            if len(window) >= IN_FLIGHT:
                n, future = window.popleft()
                assert future.result(10) == 3 * n
            window.append((i, mul.future({"A": i, "B": 3})))
        for n, future in window:
            assert future.result(10) == 3 * n
        return LOAD_CALLS / (time.perf_counter() - start)


def go_client_cell(binary: Path, url: str, queue: str, fmt: str, declare: str = "go") -> float:
    proc = subprocess.run(
        [str(binary), "-mode", "client", "-url", url, "-queue", queue, "-format", fmt,
         "-n", str(LOAD_CALLS), "-c", str(IN_FLIGHT), "-declare", declare],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] is None
    return float(report["calls_per_s"])


@pytest.fixture
def url(broker_url: str) -> str:
    return broker_url


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("server_kind", ["go", "py-async", "py-sync"])
@pytest.mark.parametrize("client_kind", ["go", "py-async", "py-sync"])
def test_matrix_cell(
    go_peer: Path, url: str, queue_name: str, client_kind: str, server_kind: str, fmt: str
) -> None:
    server = start_server(server_kind, go_peer, url, queue_name, fmt)
    try:
        assert wait_until(lambda: queue_counts(url, queue_name)[1] >= 1)  # consuming
        if client_kind == "go":
            rate = go_client_cell(go_peer, url, queue_name, fmt)
        elif client_kind == "py-async":
            rate = asyncio.run(async_client_cell(url, queue_name, fmt))
        else:
            rate = sync_client_cell(url, queue_name, fmt)
        if server_kind != "go":  # Go clients send no deadline: served exactly as before
            stats = server.server.stats
            assert (stats.expired, stats.bad_deadline, stats.loops, stats.replies) == (0, 0, 0, 0)
    finally:
        server.stop()
    RESULTS[f"{client_kind:>8} client -> {server_kind:<8} server {fmt}"] = rate


def test_go_and_python_servers_share_a_queue(go_peer: Path, url: str, queue_name: str) -> None:
    servers = [
        start_server(kind, go_peer, url, queue_name, "json")
        for kind in ("go", "py-async", "py-sync")
    ]
    try:
        assert wait_until(lambda: queue_counts(url, queue_name)[1] == 3)
        go_clients = [
            subprocess.Popen(
                [
                    str(go_peer),
                    "-mode",
                    "client",
                    "-url",
                    url,
                    "-queue",
                    queue_name,
                    "-format",
                    "json",
                    "-n",
                    "500",
                    "-c",
                    "50",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]

        async def async_side() -> None:
            transport, protocol = await aioamqp.from_url(url)
            async with await amqprpc.client_codec(protocol, queue_name, amqprpc.Json) as codec:
                mul = codec.client("Arith").Mul
                got = await asyncio.gather(*(mul({"A": i, "B": 7}) for i in range(500)))
                assert got == [7 * i for i in range(500)]
            await protocol.close()
            transport.close()

        with amqprpc.sync.client_codec(url, queue_name, amqprpc.Json) as codec:
            futures = [codec.call_async("Arith.Mul", {"A": i, "B": 11}) for i in range(500)]
            asyncio.run(async_side())
            assert [f.result(20) for f in futures] == [11 * i for i in range(500)]
        for proc in go_clients:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, out + err
            assert json.loads(out.strip().splitlines()[-1])["failures"] is None
    finally:
        for server in servers:
            server.stop()
