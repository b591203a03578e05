"""amqprpc: remote procedure calls over AMQP 0-9-1 (RabbitMQ), wire-compatible with Go.

The package root holds the sans-IO core's public surface. The adapters live in
`amqprpc.aio` (aioamqp) and `amqprpc.sync` (pika) and are imported only when used, so
`import amqprpc` works with neither client library installed.
"""

from __future__ import annotations

from ._client import DEFAULT_TIMEOUT, CallStarted, ClientProtocol
from ._dispatch import Handler, NotFound, Registry
from ._envelope import Properties, Request
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
from ._events import (
    IGNORED,
    Ack,
    CallDone,
    Consume,
    DeclareQueue,
    Delivery,
    Publish,
    Qos,
    Reject,
    Returned,
    WaitFor,
)
from ._formatters import Formatter, Json, MsgPack
from ._naming import go_name, wire_name
from ._pending import CallState, PendingTable
from ._proxy import RemoteMethod, ServiceProxy
from ._server import Invoke, Outcome, Received, ServerProtocol, call_handler, call_handler_async

__version__ = "0.1.0"

_ASYNC_ENTRY_POINTS = ("server_codec", "client_codec")


def __getattr__(name: str) -> object:
    # PEP 562: `amqprpc.server_codec` / `amqprpc.client_codec` are the async ones, imported
    # on first use so that `import amqprpc` never loads aioamqp or asyncio.
    if name in _ASYNC_ENTRY_POINTS:
        from . import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'amqprpc' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TIMEOUT",
    "IGNORED",
    "Ack",
    "BrokerError",
    "CallDone",
    "CallStarted",
    "CallState",
    "ClientProtocol",
    "ConnectionLost",
    "Consume",
    "DeclareQueue",
    "Delivery",
    "EncodeError",
    "Formatter",
    "Handler",
    "Invoke",
    "Json",
    "MessageTooLarge",
    "MsgPack",
    "NotFound",
    "Outcome",
    "PendingTable",
    "Properties",
    "ProtocolViolation",
    "Publish",
    "Qos",
    "RPCError",
    "RPCTimeout",
    "Received",
    "RegistrationError",
    "Registry",
    "Reject",
    "RemoteError",
    "RemoteMethod",
    "Request",
    "Returned",
    "ServerProtocol",
    "ServiceProxy",
    "Unroutable",
    "UsageError",
    "WaitFor",
    "call_handler",
    "call_handler_async",
    "go_name",
    "wire_name",
]
