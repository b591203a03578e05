"""Every async client library the running Python supports is installed, so that no async
backend's tests silently drop out of a run (tests/backends.py)."""

from __future__ import annotations

import sys

import pytest

from tests.backends import ASYNC_BACKENDS, expected_backends


def test_every_supported_async_backend_is_installed() -> None:
    missing = sorted(set(expected_backends()) - set(ASYNC_BACKENDS))
    assert not missing, (
        f"install {', '.join(missing)} (pip install -e '.[dev,pika,aioamqp,aiormq]'): the "
        f"async tests run on each backend Python {sys.version_info[:2]} supports"
    )


@pytest.mark.parametrize("module", ["aioamqp", "aiormq"])
def test_amqprpc_aio_imports_no_client_library(module: str) -> None:
    import subprocess

    code = (
        "import sys\n"
        "import amqprpc.aio\n"
        f"assert {module!r} not in sys.modules, 'amqprpc.aio imported {module}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_urls_without_a_client_library_name_the_extra() -> None:
    import subprocess

    code = (
        "import sys\n"
        "sys.modules['aiormq'] = sys.modules['aioamqp'] = None  # neither installed\n"
        "import asyncio, amqprpc, amqprpc.aio\n"
        "async def main():\n"
        "    try:\n"
        "        await amqprpc.aio.client_codec('amqp://127.0.0.1/', 'q', amqprpc.Json)\n"
        "    except amqprpc.UsageError as exc:\n"
        "        print(exc)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'amqprpc[aiormq]'" in result.stdout, result
