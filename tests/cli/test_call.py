"""`amqprpc call` on the real broker: the result as JSON on stdout, and one exit code for
each way a call fails."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.integration.raw import blocking

from .helpers import Served, run

pytestmark = pytest.mark.broker


@pytest.fixture
def served(url: str, queue: str, app_dir: Path):
    """cliapp:Arith served on `queue` (JSON)."""
    with Served("cliapp:Arith", "--queue", queue, "--url", url, cwd=app_dir) as served:
        yield served
        assert served.stop()[0] == 0


def test_success_prints_the_result(url: str, queue: str, served: Served) -> None:
    result = run("call", queue, "Arith.Div", '{"A": 7, "B": 2}', "--url", url)
    assert (result.returncode, json.loads(result.stdout)) == (0, {"Quo": 3, "Rem": 1})
    assert result.stderr == ""


def test_a_remote_error_is_1_with_its_text(url: str, queue: str, served: Served) -> None:
    result = run("call", queue, "Arith.Div", '{"A": 1, "B": 0}', "--url", url)
    assert result.returncode == 1
    assert "divide by zero" in result.stderr and "ZeroDivisionError" in result.stderr
    assert result.stdout == ""


def test_a_timeout_is_3(url: str, queue: str) -> None:
    with blocking(url) as connection:  # a queue nobody consumes
        connection.channel().queue_declare(queue)
    result = run("call", queue, "Arith.Mul", '{"A": 1, "B": 2}', "--url", url, "--timeout", "0.5")
    assert result.returncode == 3
    assert "RPCTimeout" in result.stderr


def test_no_such_queue_is_4(url: str, queue: str) -> None:
    result = run("call", queue, "Arith.Mul", "1", "--url", url)
    assert result.returncode == 4
    assert "Unroutable" in result.stderr and queue in result.stderr


def test_connection_refused_is_5(free_port: int) -> None:
    result = run(
        "call", "q", "Arith.Mul", "1", "--url", f"amqp://guest:guest@127.0.0.1:{free_port}/"
    )
    assert result.returncode == 5
    assert "connection refused" in result.stderr


def test_a_refused_login_is_5_and_never_shows_the_password(url: str) -> None:
    bad = url.replace("guest:guest@", "guest:not-the-password@")
    result = run("call", "q", "Arith.Mul", "1", "--url", bad)
    assert result.returncode == 5
    assert "403" in result.stderr and "not-the-password" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],  # no queue
        ["q"],  # no method
        ["q", "Arith.Mul", "{not json"],
        ["q", "Arith.Mul", "1", "--format", "xml"],
        ["q", "Arith.Mul", "1", "--timeout", "-1"],
    ],
)
def test_bad_usage_is_2(args: list[str]) -> None:
    result = run("call", *args)
    assert result.returncode == 2
    assert "usage: amqprpc call" in result.stderr


def test_the_first_of_several_urls_that_answers(
    url: str, queue: str, served: Served, free_port: int
):
    refused = f"amqp://guest:guest@127.0.0.1:{free_port}/"
    result = run("call", queue, "Arith.Mul", '{"A": 6, "B": 7}', "--url", refused, "--url", url)
    assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr


def test_the_url_comes_from_the_environment(queue: str, served: Served, free_port: int) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, AMQPRPC_URL=f"amqp://guest:guest@127.0.0.1:{free_port}/")
    result = subprocess.run(
        [sys.executable, "-m", "amqprpc", "call", queue, "Arith.Mul", "1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 5 and str(free_port) in result.stderr


def test_msgpack_bytes_print_as_base64(url: str, queue: str, app_dir: Path) -> None:
    args = ("cliapp:Arith", "--queue", queue, "--url", url, "--format", "msgpack")
    with Served(*args, cwd=app_dir) as served:
        result = run("call", queue, "Arith.Blob", "null", "--url", url, "--format", "msgpack")
        assert served.stop()[0] == 0
    assert result.returncode == 0, result.stderr
    assert base64.b64decode(json.loads(result.stdout)) == b"\x00\x01\xff"


@pytest.mark.parametrize("url", ["foo", "http://user:secret@127.0.0.1/", "amqp://127.0.0.1:x/"])
def test_a_url_that_is_not_amqp_is_2_and_named(url: str) -> None:
    result = run("call", "q", "Arith.Mul", "1", "--url", url)
    assert result.returncode == 2
    assert "not an AMQP URL" in result.stderr and "Traceback" not in result.stderr
    assert "secret" not in result.stderr
