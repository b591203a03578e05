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
from ._server import Invoke, Outcome, Received, ServerProtocol, call_handler, call_handler_async

__version__ = "0.1.0"

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
    "Request",
    "Returned",
    "ServerProtocol",
    "Unroutable",
    "UsageError",
    "WaitFor",
    "call_handler",
    "call_handler_async",
    "go_name",
    "wire_name",
]
