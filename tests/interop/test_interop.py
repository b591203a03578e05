"""Go and Python, clients and servers, in JSON and MsgPack: the matrix of every kind of client
against every kind of server (`KINDS`: Go, the async API on each installed async backend, the
sync API; 32 cells where aiormq is installed, 18 on Python 3.10 without it), and one server of
every kind sharing one queue."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, close_async, connect_async
from tests.integration.peers import Arith, AsyncServerThread, SyncServerThread
from tests.integration.raw import queue_counts, wait_until
from tests.interop.conftest import RESULTS

FORMATS = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}
LOAD_CALLS = 1000
IN_FLIGHT = 100
# A peer kind: the Go peer, the async API on one async backend ("aio-aioamqp", "aio-aiormq"),
# or the sync API. Servers of Python kinds answer Arith.Who with their kind.
KINDS = ["go", *(f"aio-{backend}" for backend in ASYNC_BACKENDS), "sync"]


def backend_of(kind: str) -> str:
    """The async backend of an "aio-..." kind."""
    assert kind.startswith("aio-"), kind
    return kind.removeprefix("aio-")


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
    if kind == "sync":
        return SyncServerThread(url, queue, FORMATS[fmt], Arith(kind), declare=declare).start()
    return AsyncServerThread(
        url, queue, FORMATS[fmt], Arith(kind), backend=backend_of(kind), declare=declare
    ).start()


def client_cell(
    kind: str, binary: Path, url: str, queue: str, fmt: str, declare: str = "go"
) -> float:
    """Run a client of `kind` through the suite and the load; returns its calls/s."""
    if kind == "go":
        return go_client_cell(binary, url, queue, fmt, declare)
    if kind == "sync":
        return sync_client_cell(url, queue, fmt)
    return asyncio.run(async_client_cell(backend_of(kind), url, queue, fmt))


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


async def async_client_cell(backend: str, url: str, queue: str, fmt: str) -> float:
    connection = await connect_async(backend, url)
    try:
        return await async_client_calls(connection, queue, fmt)
    finally:
        await close_async(connection)


async def async_client_calls(connection: Any, queue: str, fmt: str) -> float:
    async with await amqprpc.client_codec(connection, queue, FORMATS[fmt], timeout=10) as codec:
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
@pytest.mark.parametrize("server_kind", KINDS)
@pytest.mark.parametrize("client_kind", KINDS)
def test_matrix_cell(
    go_peer: Path, url: str, queue_name: str, client_kind: str, server_kind: str, fmt: str
) -> None:
    server = start_server(server_kind, go_peer, url, queue_name, fmt)
    try:
        assert wait_until(lambda: queue_counts(url, queue_name)[1] >= 1)  # consuming
        rate = client_cell(client_kind, go_peer, url, queue_name, fmt)
        if server_kind != "go":  # Go clients send no deadline: served exactly as before
            stats = server.server.stats
            assert (stats.expired, stats.bad_deadline, stats.loops, stats.replies) == (0, 0, 0, 0)
    finally:
        server.stop()
    RESULTS[f"{client_kind:>11} client -> {server_kind:<11} server {fmt}"] = rate


def go_clients(binary: Path, url: str, queue: str, count: int) -> list[subprocess.Popen[str]]:
    """`count` Go clients running the suite and 500 calls each, 50 in flight."""
    command = [str(binary), "-mode", "client", "-url", url, "-queue", queue, "-format", "json",
               "-n", "500", "-c", "50"]  # fmt: skip
    return [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]


async def async_shared_load(backend: str, url: str, queue: str) -> None:
    connection = await connect_async(backend, url)
    try:
        async with await amqprpc.client_codec(connection, queue, amqprpc.Json) as codec:
            mul = codec.client("Arith").Mul
            got = await asyncio.gather(*(mul({"A": i, "B": 7}) for i in range(500)))
            assert got == [7 * i for i in range(500)]
    finally:
        await close_async(connection)


def who_answers(codec: Any, calls: int) -> collections.Counter[str]:
    """Ask Arith.Who `calls` times at once: how many answers came from each kind of server
    (a Go server has no Who, and says so)."""
    futures = [codec.call_async("Arith.Who", None) for _ in range(calls)]
    answers: collections.Counter[str] = collections.Counter()
    for future in futures:
        error = future.exception(20)
        if error is None:
            answers[future.result()] += 1
        else:
            assert isinstance(error, amqprpc.RemoteError), error
            assert str(error) == "rpc: can't find method Arith.Who", error
            answers["go"] += 1
    return answers


def test_every_kind_of_server_shares_a_queue(go_peer: Path, url: str, queue_name: str) -> None:
    """One server of each kind on one queue, under Go, async (each backend) and sync clients
    at once; RabbitMQ deals the requests round-robin, so every server answers some."""
    servers: list[Any] = []
    go: list[subprocess.Popen[str]] = []
    try:
        for kind in KINDS:
            servers.append(start_server(kind, go_peer, url, queue_name, "json"))
        assert wait_until(lambda: queue_counts(url, queue_name)[1] == len(KINDS))
        go = go_clients(go_peer, url, queue_name, 2)

        async def async_side() -> None:
            await asyncio.gather(
                *(async_shared_load(backend, url, queue_name) for backend in ASYNC_BACKENDS)
            )

        with amqprpc.sync.client_codec(url, queue_name, amqprpc.Json) as codec:
            futures = [codec.call_async("Arith.Mul", {"A": i, "B": 11}) for i in range(500)]
            asyncio.run(async_side())
            assert [f.result(20) for f in futures] == [11 * i for i in range(500)]
            for proc in go:
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, out + err
                assert json.loads(out.strip().splitlines()[-1])["failures"] is None
            # Once the load is over, every server has room again (a busy one may have had
            # its prefetch window full, and RabbitMQ deals only to consumers with room).
            answers = who_answers(codec, 40 * len(KINDS))
        assert sorted(answers) == sorted(KINDS), answers
    finally:
        for proc in go:
            if proc.poll() is None:  # a failure above left it running
                proc.kill()
                proc.communicate()
        for server in servers:
            server.stop()
