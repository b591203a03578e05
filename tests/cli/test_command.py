"""The command itself, without a broker: the installed script, `python -m amqprpc`, each
subcommand's help (examples and exit codes), and how results are printed as JSON."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

import amqprpc.cli
from amqprpc.cli._common import to_json

from .helpers import run


def test_the_installed_script_is_on_the_venvs_path() -> None:
    bindir = Path(sys.executable).parent
    script = shutil.which("amqprpc", path=str(bindir))
    assert script is not None
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"amqprpc {amqprpc.__version__}\n")


def test_python_dash_m_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in amqprpc.cli.COMMANDS:
        assert command.NAME in result.stdout


def test_no_command_is_bad_usage() -> None:
    assert run().returncode == 2


@pytest.mark.parametrize("name", [command.NAME for command in amqprpc.cli.COMMANDS])
def test_each_command_has_examples_and_exit_codes(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        amqprpc.cli.main([name, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert f"amqprpc {name}" in shown
    assert "examples:" in shown and "exit codes:" in shown


def test_calls_exit_codes_are_in_its_help(capsys) -> None:
    with pytest.raises(SystemExit):
        amqprpc.cli.main(["call", "--help"])
    shown = capsys.readouterr().out
    for line in ("0  success", "1  the server answered", "2  bad usage", "3  timeout",
                 "4  no such queue", "5  connection failure"):  # fmt: skip
        assert line in shown


def test_importing_amqprpc_does_not_import_the_command() -> None:
    code = "import sys, amqprpc; print('amqprpc.cli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout == "False\n"


def test_json_output_of_values_json_cannot_hold() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    value = {
        "bin": b"\x00\x01\xff",
        "ts": msgpack.Timestamp.from_datetime(when),
        1: [b"", None, 1.5],
        b"k": True,
    }
    assert json.loads(to_json(value)) == {
        "bin": "AAH/",
        "ts": "2024-05-06T07:08:09+00:00",
        "1": ["", None, 1.5],
        "aw==": True,
    }
    assert to_json("héllo") == '"héllo"'
