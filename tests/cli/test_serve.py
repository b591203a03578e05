"""`amqprpc serve` on the real broker: a class, an instance and functions, on the sync and
the async server; SIGTERM and SIGINT stop it with 0, after the request in progress."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import pytest

import amqprpc
import amqprpc.sync
from tests.integration.raw import queue_counts, wait_until

from .helpers import STOP, Served, run

pytestmark = pytest.mark.broker

SERVERS = {"sync": [], "async": ["--async"]}


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize(
    ("target", "extra", "method", "argument", "result"),
    [
        ("cliapp:Arith", [], "Arith.Mul", {"A": 6, "B": 7}, 42),
        ("cliapp:calculator", ["--name", "Calc"], "Calc.Div", {"A": 7, "B": 2},
         {"Quo": 3, "Rem": 1}),
        ("cliapp:add", ["--name", "Pair.Add"], "Pair.Add", [2, 3], 5),
        ("cliapp:add_async", ["--name", "Pair.Add"], "Pair.Add", [4, 5], 9),
    ],
)  # fmt: skip
def test_serves_what_is_named_and_stops_on_sigterm(
    url: str, queue: str, app_dir: Path, server: str, target: str, extra: list[str],
    method: str, argument: object, result: object,
) -> None:  # fmt: skip
    with Served(target, "--queue", queue, "--url", url, *extra, *SERVERS[server], cwd=app_dir) as s:
        assert f"on queue {queue!r}" in s.start_line
        assert ("async server" if server == "async" else "sync server on pika") in s.start_line
        called = run("call", queue, method, json.dumps(argument), "--url", url)
        assert (called.returncode, called.stdout) == (0, json.dumps(result) + "\n"), called.stderr
        code, stderr = s.stop()
    assert code == 0, stderr
    assert STOP in stderr


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_lets_the_request_in_progress_finish(
    url: str, queue: str, app_dir: Path, server: str, sig: signal.Signals
) -> None:
    method = "Arith.Aslow" if server == "async" else "Arith.Slow"
    with Served("cliapp:Arith", "--queue", queue, "--url", url, *SERVERS[server], cwd=app_dir) as s:
        with amqprpc.sync.client_codec(url, queue, amqprpc.Json, timeout=20) as client:
            future = client.call_async(method, 1.0)
            s.stdout.wait_for("running")  # the handler has started
            code, stderr = s.stop(sig)
            assert future.result() == "done"
    assert code == 0, stderr
    assert STOP in stderr
    assert stderr.count(STOP) == 1


def test_workers_is_the_servers_concurrency(url: str, queue: str, app_dir: Path) -> None:
    # Four slow requests at once with --workers 2: two run, two wait for a free slot.
    args = ("cliapp:Arith", "--queue", queue, "--url", url, "--workers", "2")
    with Served(*args, cwd=app_dir) as s:
        assert "workers 2" in s.start_line
        with amqprpc.sync.client_codec(url, queue, amqprpc.Json, timeout=20) as client:
            futures = [client.call_async("Arith.Slow", 0.5) for _ in range(4)]
            s.stdout.wait_for("running")
            s.stdout.wait_for("running")
            assert not any(f.done() for f in futures)
            # The other two wait in the queue, not in the server's prefetch.
            assert wait_until(lambda: queue_counts(url, queue)[0] == 2)
            assert [f.result() for f in futures] == ["done"] * 4
        code, _ = s.stop()
    assert code == 0


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ("cliapp", "expected MODULE:ATTR"),
        ("no_such_module_here:X", "cannot import"),
        ("cliapp:Nope", "has no attribute"),
        ("cliapp:APP_MISSING", "has no attribute"),
    ],
)
def test_a_bad_target_is_bad_usage(url: str, queue: str, app_dir: Path, target: str, text: str):
    result = run("serve", target, "--queue", queue, "--url", url, cwd=app_dir)
    assert result.returncode == 2
    assert text in result.stderr


def test_serving_nothing_servable_is_bad_usage(url: str, queue: str, app_dir: Path) -> None:
    (app_dir / "cliconstants.py").write_text("answer = 42\n", encoding="utf-8")
    result = run("serve", "cliconstants:answer", "--queue", queue, "--url", url, cwd=app_dir)
    assert result.returncode == 2
    assert "RegistrationError" in result.stderr


def test_no_broker_is_a_connection_failure(free_port: int, queue: str, app_dir: Path) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port}/"
    result = run("serve", "cliapp:Arith", "--queue", queue, "--url", url, cwd=app_dir)
    assert result.returncode == 5
    assert "connection refused" in result.stderr
    # One line naming the failure: not the client library's own log lines and traceback.
    assert result.stderr.strip().splitlines() == [
        f"amqprpc serve: ConnectionLost: cannot connect: 127.0.0.1:{free_port}: "
        "connection refused"
    ]


def test_workers_out_of_range_is_bad_usage(app_dir: Path) -> None:
    result = run("serve", "cliapp:Arith", "--queue", "q", "--workers", "0", cwd=app_dir)
    assert result.returncode == 2 and "must be 1..65535" in result.stderr


def test_the_installed_script_imports_from_the_working_directory(
    url: str, queue: str, app_dir: Path
) -> None:
    # A console script's sys.path starts with its bin/, not the working directory.
    script = shutil.which("amqprpc", path=str(Path(sys.executable).parent))
    assert script is not None
    args = ("cliapp:Arith", "--queue", queue, "--url", url)
    with Served(*args, cwd=app_dir, command=(script,)) as served:
        assert "Arith.Mul" in served.start_line
        assert served.stop()[0] == 0
