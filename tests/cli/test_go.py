"""`amqprpc call`, `bench` and `doctor` against the Go peer's server (tests/interop), in
both body formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.interop.test_interop import GoServer

from .helpers import run

pytestmark = [pytest.mark.interop, pytest.mark.broker]


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_call_a_go_server(go_peer: Path, url: str, queue: str, fmt: str) -> None:
    server = GoServer(go_peer, url, queue, fmt)
    try:
        options = ("--url", url, "--format", fmt)
        mul = run("call", queue, "Arith.Mul", '{"A": 6, "B": 7}', *options)
        echo = run("call", queue, "Arith.Echo", '{"s": "héllo", "l": [1, "x"]}', *options)
        div = run("call", queue, "Arith.Div", '{"A": 1, "B": 0}', *options)
        nope = run("call", queue, "Nope.Nope", "1", *options)
    finally:
        server.stop()
    assert (mul.returncode, mul.stdout) == (0, "42\n"), mul.stderr
    assert (echo.returncode, json.loads(echo.stdout)) == (0, {"s": "héllo", "l": [1, "x"]})
    assert (div.returncode, div.stdout) == (1, "")
    assert "divide by zero" in div.stderr
    assert nope.returncode == 1 and "rpc: can't find service Nope.Nope" in nope.stderr


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_bench_and_doctor_a_go_server(go_peer: Path, url: str, queue: str, fmt: str) -> None:
    server = GoServer(go_peer, url, queue, fmt)
    try:
        options = ("--url", url, "--format", fmt)
        bench = run(
            "bench", queue, "Arith.Mul", '{"A": 6, "B": 7}', "-n", "300", "-c", "20", *options
        )
        doctor = run("doctor", queue, *options)
    finally:
        server.stop()
    assert bench.returncode == 0, bench.stderr
    assert "calls: 300 " in bench.stdout and "errors: 0\n" in bench.stdout
    assert doctor.returncode == 0, doctor.stdout
    assert "ping" in doctor.stdout and "rpc: can't find service AmqprpcDoctor.Ping" in doctor.stdout
