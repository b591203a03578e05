"""`python -m amqprpc`: the `amqprpc` command (amqprpc/cli)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
