"""The Python snippets of README and docs/ run as written: the scripts against a real broker
while the shipped example server (examples/pyserver.py, `Arith` on "testrpc") serves, the
servers until SIGINT, and the tests of docs/testing.md under pytest on the in-memory broker.
A snippet that cannot run alone is listed in FRAGMENTS with the reason."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import amqprpc
import amqprpc.sync
from tests.integration.raw import delete_queue

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [
    (f"{page.stem}-{number}", snippet)
    for page in PAGES
    for number, snippet in enumerate(
        re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    )
]

# Snippets that are parts of a program rather than programs, by a line they contain.
FRAGMENTS = {
    "def mul(request: HttpRequest)": "a Django view: examples/django_app runs it (test_django)",
    "broker.example:5671": "TLS to a host and CA of the reader's own (test_tls covers both)",
}
SERVES_FOREVER = re.compile(r"^server\.serve_forever\(\)", re.M)  # a module-level server


def _kind(snippet: str) -> str:
    if any(line in snippet for line in FRAGMENTS):
        return "fragment"
    if "def test_" in snippet:
        return "pytest"
    if SERVES_FOREVER.search(snippet):
        return "server"
    return "script"


def _needs(snippet: str) -> list[str]:
    return [name for name in ("aiormq", "aioamqp", "pika") if f"import {name}" in snippet]


def _runnable(kind: str) -> list[object]:
    params = []
    for name, snippet in SNIPPETS:
        if _kind(snippet) != kind:
            continue
        if any(importlib.util.find_spec(name) is None for name in _needs(snippet)):
            continue  # a library this Python does not get (aiormq on 3.10): not collected
        params.append(pytest.param(snippet, id=name))
    return params


def test_every_snippet_is_run_or_named_a_fragment() -> None:
    kinds = [_kind(snippet) for _, snippet in SNIPPETS]
    for line in FRAGMENTS:  # each reason still names a snippet
        assert any(line in snippet for _, snippet in SNIPPETS), line
    assert kinds.count("pytest") >= 2 and kinds.count("server") >= 2
    assert kinds.count("script") >= 10


@pytest.fixture(scope="module")
def example_server() -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "pyserver.py"), "--format", "json"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert server.stderr is not None
    for line in server.stderr:
        if "serving" in line:
            break
    else:
        pytest.fail("examples/pyserver.py did not start")
    yield server
    server.send_signal(signal.SIGINT)
    assert server.wait(15) == 0
    server.stderr.close()


def _run(path: Path, snippet: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    path.write_text(snippet)
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.broker
@pytest.mark.parametrize("snippet", _runnable("script"))
def test_a_script_snippet_runs_against_the_example_server(
    snippet: str, example_server: subprocess.Popen[str], tmp_path: Path
) -> None:
    done = _run(tmp_path / "snippet.py", snippet)
    assert done.returncode == 0, done.stderr


@pytest.mark.broker
@pytest.mark.parametrize("snippet", _runnable("server"))
def test_a_server_snippet_serves_until_sigint(snippet: str, tmp_path: Path) -> None:
    path = tmp_path / "server_snippet.py"
    path.write_text(snippet.replace('"testrpc"', '"amqprpc-readme-server"'))
    server = subprocess.Popen([sys.executable, str(path)], cwd=ROOT)
    try:
        with amqprpc.sync.client_codec(
            "amqp://guest:guest@127.0.0.1:5672/", "amqprpc-readme-server", amqprpc.Json,
            timeout=30,
        ) as client:  # fmt: skip
            for _ in range(100):  # until the snippet's server has declared its queue
                try:
                    assert client.call("Arith.Mul", {"A": 6, "B": 7}) == 42
                    break
                except amqprpc.Unroutable:
                    if server.poll() is not None:
                        break
                    time.sleep(0.1)  # polled: its queue appears with no event to wait on
            else:
                pytest.fail("the server snippet never answered")
        server.send_signal(signal.SIGINT)
        assert server.wait(15) == 0
    finally:
        if server.poll() is None:
            server.kill()
        delete_queue("amqp://guest:guest@127.0.0.1:5672/", "amqprpc-readme-server")


@pytest.mark.parametrize("snippet", _runnable("pytest"))
def test_a_testing_snippet_passes_under_pytest(snippet: str, tmp_path: Path) -> None:
    path = tmp_path / "test_snippet.py"
    path.write_text(snippet)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", str(path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tests = snippet.count("def test_")
    assert f"{tests} passed" in done.stdout
