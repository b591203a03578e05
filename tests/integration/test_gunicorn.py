"""The Django example under real gunicorn processes, as README runs it: `gunicorn --preload
-w 3 --threads 8 rpcsite.wsgi`. Every product is right, and a killed worker costs only the
requests it had in flight: gunicorn starts another, which connects on its first call."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

import amqprpc
from tests.integration.peers import SyncServerThread

SITE = Path(__file__).resolve().parents[2] / "examples" / "django_app"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("broker_url", ["rabbitmq3"], indirect=True),
]
WORKERS, THREADS = 3, 8
CLIENTS = 24  # requests the test keeps in flight


class Arith:
    def mul(self, args: dict[str, int]) -> int:
        time.sleep(0.005)  # a little work, so that requests overlap
        return args["A"] * args["B"]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def _get(port: int, a: int, b: int) -> tuple[int, object]:
    url = f"http://127.0.0.1:{port}/mul?a={a}&b={b}"
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (OSError, http.client.HTTPException) as err:  # the worker died with the request
        return 0, repr(err)


def _workers(master: int) -> list[int]:
    # The live children of gunicorn's master, from /proc (field 4 of stat is the parent).
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if fields[1] == str(master) and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def site(broker_url: str, queue_name: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    env = dict(os.environ, AMQPRPC_URL=broker_url, AMQPRPC_QUEUE=queue_name)
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "-w", str(WORKERS),
        "--threads", str(THREADS), "-b", f"127.0.0.1:{port}", "rpcsite.wsgi",
    ]  # fmt: skip
    master = subprocess.Popen(command, cwd=SITE, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(_workers(master.pid)) < WORKERS or not _listening(port):
            assert master.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)  # polling a process we do not control: no event to wait on
        yield master.pid, port
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(30)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def test_gunicorn_workers_share_nothing_and_survive_a_killed_one(
    site: tuple[int, int], broker_url: str, queue_name: str
) -> None:
    master, port = site
    server = SyncServerThread(
        broker_url, queue_name, amqprpc.Json, Arith(), max_workers=32
    ).start()
    try:
        pairs = [(a, b) for a in range(20) for b in range(20)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda ab: _get(port, *ab), pairs))
        assert answers == [(200, f'{{"result": {a * b}}}') for a, b in pairs]

        # Kill one worker while requests are in flight: only those it held may fail.
        victim = _workers(master)[0]
        with ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(_get, port, a, b) for a, b in pairs]
            wait(running, return_when=FIRST_COMPLETED)  # the burst is under way
            os.kill(victim, signal.SIGKILL)
            burst = [f.result() for f in running]
        # Only requests in flight then can fail (CLIENTS at most: the killed worker's share,
        # accepted but not yet answered), and only by a dropped connection, never with a
        # wrong answer; every request sent after them is answered.
        right = [(200, f'{{"result": {a * b}}}') for a, b in pairs]
        failed = [i for i, r in enumerate(burst) if r != right[i]]
        assert all(burst[i][0] == 0 for i in failed), [burst[i] for i in failed if burst[i][0]]
        assert 0 < len(failed) < CLIENTS, failed
        assert max(failed) - min(failed) < 2 * CLIENTS, failed

        deadline = time.monotonic() + 30
        while len(_workers(master)) < WORKERS:  # gunicorn replaces the worker
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with ThreadPoolExecutor(CLIENTS) as pool:
            after = list(pool.map(lambda ab: _get(port, *ab), pairs))
        assert after == right
    finally:
        server.stop()
