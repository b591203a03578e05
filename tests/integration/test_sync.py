"""The sync API (pika) against a real RabbitMQ."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.faults import TcpProxy
from tests.integration.peers import Arith, AsyncServerThread, SyncServerThread
from tests.integration.raw import queue_counts, wait_until


@pytest.fixture
def sync_server(broker_url: str, queue_name: str) -> Iterator[SyncServerThread]:
    peer = SyncServerThread(broker_url, queue_name, amqprpc.Json, Arith()).start()
    yield peer
    peer.stop()


@pytest.fixture
def proxy(broker_url: str) -> Iterator[TcpProxy]:
    p = TcpProxy(broker_url)
    yield p
    p.close()


def test_callers_connection_snippet_and_thread_ownership(
    sync_server: SyncServerThread, broker_url: str, queue_name: str
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    codec = amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json)
    client = codec.client("Arith")
    assert client.Mul({"A": 2, "B": 3}) == 6

    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            client.Mul({"A": 1, "B": 1})
        except amqprpc.RPCError as exc:
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], amqprpc.UsageError)
    assert "thread" in str(errors[0])
    assert client.Mul({"A": 4, "B": 5}) == 20  # still fine on its own thread
    codec.close()
    with pytest.raises(amqprpc.ConnectionLost):
        client.Mul({"A": 1, "B": 1})
    assert connection.is_open  # the caller's connection is the caller's
    connection.close()


def test_many_threads_share_one_thread_safe_client(
    sync_server: SyncServerThread, broker_url: str, queue_name: str
) -> None:
    results: dict[int, list[Any]] = {}
    with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=20) as codec:
        echo = codec.client("Arith").echo

        def worker(n: int) -> None:
            results[n] = [echo({"t": n, "i": i}) for i in range(50)]

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        future = codec.call_async("Arith.Mul", {"A": 3, "B": 3})
        assert future.result(10) == 9
    assert results == {n: [{"t": n, "i": i} for i in range(50)] for n in range(16)}


def test_timeouts_unroutable_and_cleanup(broker_url: str, queue_name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    server = amqprpc.sync.server_codec(connection, queue_name, amqprpc.Json)  # declares only
    codec = amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json, timeout=0.3)
    with pytest.raises(amqprpc.RPCTimeout):
        codec.call("Arith.Mul", {"A": 1, "B": 1})
    with pytest.raises(amqprpc.RPCTimeout):
        codec.call("Arith.Mul", {"A": 1, "B": 1}, timeout=0.1)
    assert codec.pending == 0
    assert wait_until(lambda: queue_counts(broker_url, queue_name)[0] == 0)  # expired there too
    nowhere = amqprpc.sync.client_codec(connection, "amqprpc-test-nowhere", amqprpc.Json)
    with pytest.raises(amqprpc.Unroutable):
        nowhere.call("Arith.Mul", 1, timeout=5)
    assert nowhere.pending == 0
    codec.close()
    nowhere.close()
    server.close()
    connection.close()
    with amqprpc.sync.client_codec(broker_url, "amqprpc-test-nowhere", amqprpc.Json) as safe:
        with pytest.raises(amqprpc.Unroutable):
            safe.call("Arith.Mul", 1, timeout=5)
        with pytest.raises(amqprpc.EncodeError):
            safe.call("Arith.Mul", float("nan"))


def test_thread_safe_client_connects_lazily_and_reconnects(
    sync_server: SyncServerThread, proxy: TcpProxy, queue_name: str
) -> None:
    codec = amqprpc.sync.client_codec(proxy.url, queue_name, amqprpc.Json, timeout=10)
    assert proxy.accepted == 0  # nothing happens before the first call
    arith = codec.client("Arith")
    assert arith.Mul({"A": 2, "B": 2}) == 4
    assert proxy.accepted == 1
    gate = [arith.Sleep.future({"Ms": 3000}) for _ in range(20)]  # in flight during the cut
    assert wait_until(lambda: sync_server.server.in_flight == 20)
    assert proxy.cut() == 1
    for future in gate:
        with pytest.raises(amqprpc.ConnectionLost):
            future.result(2)
    assert arith.Mul({"A": 3, "B": 3}) == 9  # the next call reconnects
    assert proxy.accepted == 2
    codec.close()
    with pytest.raises(amqprpc.ConnectionLost):
        arith.Mul({"A": 1, "B": 1})


def test_unreachable_broker_fails_calls_not_construction(queue_name: str) -> None:
    codec = amqprpc.sync.client_codec(
        "amqp://guest:secret-pw@127.0.0.1:1/", queue_name, amqprpc.Json, timeout=5
    )
    with pytest.raises(amqprpc.ConnectionLost) as err:
        codec.call("Arith.Mul", 1)
    assert "secret-pw" not in str(err.value)
    codec.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_safety(sync_server: SyncServerThread, broker_url: str, queue_name: str) -> None:
    codec = amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=10)
    assert codec.call("Arith.Mul", {"A": 2, "B": 5}) == 10  # the parent is connected
    parents_reply_queue = codec.reply_queue
    pid = os.fork()
    if pid == 0:  # the child: a pre-forking web server's worker, its threads calling at once
        status = 1
        try:
            sys.setswitchinterval(1e-6)  # threads interleave as in a busy new worker
            together = threading.Barrier(16)

            def first_call(i: int) -> Any:
                together.wait(10)  # every thread's first call at once, as a worker's requests
                return codec.call("Arith.Mul", {"A": i, "B": 3})

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                products = list(pool.map(first_call, range(16)))
            right = products == [3 * i for i in range(16)]
            status = 0 if right and codec.reply_queue != parents_reply_queue else 2
            codec.close()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert codec.call("Arith.Mul", {"A": 4, "B": 4}) == 16  # the parent's connection is intact
    codec.close()


def test_slow_handlers_do_not_starve_other_calls(broker_url: str, queue_name: str) -> None:
    release = threading.Event()

    class Slow:
        def block(self, arg: Any) -> str:
            assert release.wait(10)
            return "done"

        def ping(self, arg: Any) -> str:
            return "pong"

        async def aping(self, arg: Any) -> str:
            await asyncio.sleep(0)
            return "apong"

    peer = SyncServerThread(broker_url, queue_name, amqprpc.Json, Slow(), max_workers=4).start()
    with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=10) as codec:
        blocked = [codec.call_async("Slow.Block", None) for _ in range(3)]
        assert wait_until(lambda: peer.server.in_flight == 3)
        assert codec.call("Slow.Ping", None) == "pong"
        assert codec.call("Slow.Aping", None) == "apong"
        assert not any(f.done() for f in blocked)
        release.set()
        assert [f.result(10) for f in blocked] == ["done"] * 3
    peer.stop()


def test_stop_drains_in_flight_requests(broker_url: str, queue_name: str) -> None:
    release = threading.Event()
    entered = threading.Event()

    def hold(arg: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return arg

    server = amqprpc.sync.server_codec(broker_url, queue_name, amqprpc.Json, grace=10)
    server.register(hold, name="S.Hold")
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=10) as codec:
        pending = codec.call_async("S.Hold", "kept")
        assert entered.wait(10)
        server.stop()  # from another thread
        assert wait_until(lambda: queue_counts(broker_url, queue_name)[1] == 0)  # no consumer
        assert serving.is_alive()  # still draining
        release.set()
        assert pending.result(10) == "kept"
    serving.join(10)
    assert not serving.is_alive()


def test_sigterm_stops_a_server_on_the_main_thread(broker_url: str, queue_name: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys, amqprpc, amqprpc.sync
        def mul(args):
            return args["A"] * args["B"]
        server = amqprpc.sync.server_codec({broker_url!r}, {queue_name!r}, amqprpc.Json)
        server.register(mul, name="S.Mul")
        print("serving", flush=True)
        server.serve_forever()
        print("stopped", flush=True)
        """
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=root
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
    with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=10) as codec:
        assert codec.call("S.Mul", {"A": 6, "B": 7}) == 42
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out.strip() == "stopped"


def test_sync_and_async_servers_share_a_queue(broker_url: str, queue_name: str) -> None:
    servers = [
        SyncServerThread(broker_url, queue_name, amqprpc.MsgPack, Arith("sync")).start(),
        AsyncServerThread(broker_url, queue_name, amqprpc.MsgPack, Arith("async")).start(),
    ]
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.MsgPack) as codec:
            futures = [codec.call_async("Arith.Who", None) for _ in range(200)]
            products = [codec.call_async("Arith.Mul", {"A": i, "B": 3}) for i in range(200)]
            tags = [f.result(10) for f in futures]
            assert [f.result(10) for f in products] == [3 * i for i in range(200)]
        assert set(tags) == {"sync", "async"}
    finally:
        for server in servers:
            server.stop()
