"""The core does no I/O: importing it loads no client library, no loop, no sockets, and no
core module imports them (STYLE.md section 1)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import amqprpc

PACKAGE = Path(amqprpc.__file__).parent
CORE_MODULES = sorted(PACKAGE.glob("*.py"))
FORBIDDEN = {"threading", "asyncio", "socket", "pika", "aioamqp", "aiormq", "pamqp", "time"}
# opentelemetry: tracing (amqprpc/_tracing.py) only uses it once the application imported it.
NOT_LOADED = ["pika", "aioamqp", "aiormq", "pamqp", "asyncio", "socket", "opentelemetry"]


def test_import_amqprpc_loads_no_io_modules():
    code = (
        "import json, sys\n"
        "import amqprpc\n"
        f"print(json.dumps({{m: m in sys.modules for m in {NOT_LOADED!r}}}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(result.stdout)
    assert loaded == dict.fromkeys(NOT_LOADED, False)


def test_async_entry_points_resolve_lazily():
    # PEP 562: `amqprpc.server_codec` loads the aio adapter on first use, and not before.
    code = (
        "import sys\n"
        "import amqprpc\n"
        "assert 'amqprpc.aio' not in sys.modules\n"
        "codec = amqprpc.server_codec\n"
        "import amqprpc.aio\n"
        "assert codec is amqprpc.aio.server_codec\n"
        "assert amqprpc.client_codec is amqprpc.aio.client_codec\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == "ok\n"


def test_core_modules_are_found():
    names = {path.stem for path in CORE_MODULES}
    expected = {"_client", "_dispatch", "_envelope", "_errors", "_events", "_formatters"}
    expected |= {"_frames", "_naming", "_ops", "_pending", "_server", "__init__"}
    assert expected <= names


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value).split(".")[0])
    return found


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_core_module_imports_nothing_that_does_io(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _imported_modules(tree).isdisjoint(FORBIDDEN)


def test_the_scan_would_catch_a_forbidden_import():
    tree = ast.parse(
        "import os\nimport asyncio.events\nfrom time import sleep\n__import__('socket')\n"
    )
    assert _imported_modules(tree) & FORBIDDEN == {"asyncio", "time", "socket"}
