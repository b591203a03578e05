"""Without pika, importing the sync API says which extra to install."""

from __future__ import annotations

import subprocess
import sys


def test_import_without_pika_names_the_extra() -> None:
    code = "import sys\nsys.modules['pika'] = None  # not installed\nimport amqprpc.sync\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "ImportError: amqprpc.sync runs on pika" in result.stderr
    assert "pip install 'amqprpc[pika]'" in result.stderr
