"""amqprpc: remote procedure calls over AMQP 0-9-1 (RabbitMQ), wire-compatible with Go.

What an application uses: the errors, the formatters, `Registry` and the naming helpers, and
the async entry points `server_codec`/`client_codec` (also in `amqprpc.aio`). The sync API is
`amqprpc.sync`. The sans-IO machinery, for writing an adapter of your own, is
`amqprpc.protocol`. The adapters are imported only when used, so `import amqprpc` works with
neither client library installed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._client import DEFAULT_TIMEOUT
from ._deadline import request_deadline
from ._dispatch import Registry
from ._errors import (
    BrokerError,
    ConnectionLost,
    EncodeError,
    MessageTooLarge,
    ProtocolViolation,
    RegistrationError,
    RemoteError,
    RPCError,
    RPCTimeout,
    Unroutable,
    UsageError,
)
from ._formatters import Formatter, Json, MsgPack
from ._naming import go_name, wire_name

if TYPE_CHECKING:
    from .aio import client_codec, server_codec

__version__ = "0.1.0"  # the one place it is written (pyproject.toml reads it from here)

# A library's logs are the application's to show: nothing is printed unless it configures
# logging (the loggers are "amqprpc" and its modules' names below it; docs/errors.md lists them).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_ASYNC_ENTRY_POINTS = ("client_codec", "server_codec")


def __getattr__(name: str) -> object:
    # PEP 562: `amqprpc.server_codec` / `amqprpc.client_codec` are the async ones, imported
    # on first use so that `import amqprpc` never loads a client library or asyncio.
    if name in _ASYNC_ENTRY_POINTS:
        from . import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'amqprpc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ASYNC_ENTRY_POINTS])


__all__ = [
    "DEFAULT_TIMEOUT",
    "BrokerError",
    "ConnectionLost",
    "EncodeError",
    "Formatter",
    "Json",
    "MessageTooLarge",
    "MsgPack",
    "ProtocolViolation",
    "RPCError",
    "RPCTimeout",
    "RegistrationError",
    "Registry",
    "RemoteError",
    "Unroutable",
    "UsageError",
    "client_codec",
    "go_name",
    "request_deadline",
    "server_codec",
    "wire_name",
]
