"""The demo README's first command runs (`./demo` is `python -m amqprpc.demo` in .venv): on
the in-memory broker with no RabbitMQ, and on a real one with --url; a broker that is not
there is a failure named on stdout."""

from __future__ import annotations

import subprocess
import sys

import pytest

from amqprpc._urls import redacted
from tests.conftest import BROKER_URL


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amqprpc.demo", "--calls", "50", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def check_table(out: str) -> None:
    assert "first call, Arith.Mul 6*7 = 42" in out
    assert "50 calls, all at once" in out and "calls/s" in out
    assert "Arith.Div 1/0 -> RemoteError" in out
    assert "sync (thread-safe client): 50 calls" in out
    assert out.rstrip().endswith("every answer was right")


def test_the_demo_runs_in_memory() -> None:
    done = demo()
    assert done.returncode == 0, done.stderr
    assert "on the in-memory broker" in done.stdout
    check_table(done.stdout)


@pytest.mark.broker
def test_the_demo_runs_on_a_real_broker() -> None:
    done = demo("--url", BROKER_URL)
    assert done.returncode == 0, done.stderr
    assert f"on {redacted(BROKER_URL)}" in done.stdout and "guest:guest" not in done.stdout
    check_table(done.stdout)


@pytest.mark.broker
def test_the_demo_names_a_broker_that_is_not_there() -> None:
    done = demo("--url", "amqp://guest:guest@127.0.0.1:1/")
    assert done.returncode == 1
    assert "FAILED: ConnectionLost: cannot connect: 127.0.0.1:1" in done.stdout
    assert "refused" in done.stdout


def test_the_command_runs_the_demo_too() -> None:
    done = subprocess.run([sys.executable, "-m", "amqprpc", "demo", "--calls", "50"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    check_table(done.stdout)
