"""The Go peer: built once per run from tests/interop/go (GOPATH mode, Debian's packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GO_DIR = Path(__file__).parent / "go"
GOPATH = "/usr/share/gocode"
# The codec package the Go examples and this peer share (examples/go/src/goamqprpc).
EXAMPLES_GOPATH = Path(__file__).resolve().parents[2] / "examples" / "go"
RESULTS: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here talks to the Go peer through the broker."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.interop)
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def go_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the built Go peer. Missing Go fails in CI and skips (with the reason) locally."""
    go = shutil.which("go")
    if go is None or not Path(GOPATH, "src/github.com/streadway/amqp").is_dir():
        reason = (
            "Go interop needs golang-go, golang-github-streadway-amqp-dev and "
            "golang-gopkg-vmihailenco-msgpack.v2-dev (.ci/run installs them)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    binary = tmp_path_factory.mktemp("go") / "peer"
    env = dict(os.environ, GOPATH=f"{GOPATH}:{EXAMPLES_GOPATH}", GO111MODULE="off")
    env.setdefault("GOCACHE", str(tmp_path_factory.mktemp("gocache")))
    subprocess.run([go, "build", "-o", str(binary), "./peer"], cwd=GO_DIR, env=env, check=True)
    return binary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the interop matrix's throughput, one line a cell."""
    if not RESULTS:
        return
    terminalreporter.section("interop throughput (1000 calls, 100 in flight)")
    for cell in sorted(RESULTS):
        terminalreporter.write_line(f"{cell:<50}{RESULTS[cell]:>10.0f} calls/s")
