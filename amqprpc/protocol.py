"""The sans-IO protocol core, for people writing an adapter of their own.

amqprpc is one core that does no I/O and thin adapters that move bytes and events between a
client library and it (STYLE.md section 1; the shape of h11's and wsproto's public events).
An adapter:

1. implements a `Link` (blocking) or `AsyncLink` (asyncio) for one AMQP channel: `perform`
   carries out an action and returns the broker's answer, and what the broker sends unasked
   (deliveries, returns, the channel's end) goes to the `LinkSink` bound to it;
2. drives the core's ops (`call_op`, `client_setup_op`, `server_setup_op`, `consume_op`,
   `cancel_consume_op`, `close_op`) with the pump `run` / `run_async`, supplying how to wait
   for a call's end (`WaitFor`);
3. hands deliveries to `ClientProtocol.receive` / `ServerProtocol.receive`, runs handlers with
   `call_handler` / `call_handler_async` (given the wall clock, so that stale requests never
   start), performs what `ServerProtocol.finish` and
   `flush_acks` return, and ends calls where the client core says (`time_left`, `alarm`,
   `expire`, `fail_all`). It never compares a clock with a deadline or decides an ack itself.

The adapters in `amqprpc.sync` (pika) and `amqprpc.aio` (aiormq and aioamqp) are complete examples.
"""

from __future__ import annotations

from ._client import DEFAULT_TIMEOUT, ClientProtocol, client_protocol, reply_queue_name
from ._deadline import request_deadline
from ._dispatch import Handler, NotFound, Registry
from ._envelope import Properties, checked_properties, lenient_properties, read_properties
from ._events import (
    IGNORED,
    Ack,
    Action,
    Answer,
    CallDone,
    CallStarted,
    CancelConsume,
    CloseChannel,
    Consume,
    Consuming,
    DeclareQueue,
    Delivery,
    Event,
    Ignored,
    Invoke,
    Outcome,
    Performed,
    Publish,
    Qos,
    QueueDeclared,
    Received,
    Reject,
    Request,
    Returned,
    WaitFor,
)
from ._frames import decode_content_header, encode_content_header
from ._link import (
    AsyncLink,
    Connector,
    Finished,
    Link,
    LinkSink,
    NoSink,
    advance,
    advance_async,
    no_wait,
    run,
    run_async,
)
from ._ops import (
    DeclareProfile,
    Op,
    call_op,
    cancel_consume_op,
    client_setup_op,
    close_op,
    consume_op,
    request_queue_declaration,
    resume_op,
    server_setup_op,
)
from ._pending import CallState, PendingStats, PendingTable
from ._server import (
    DEFAULT_DEADLINE_SKEW,
    DEFAULT_MAX_BODY_SIZE,
    AckMode,
    DeliveryState,
    ServerProtocol,
    ServerStats,
    call_handler,
    call_handler_async,
)
from ._tracing import trace_context

__all__ = [
    "DEFAULT_DEADLINE_SKEW",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_TIMEOUT",
    "IGNORED",
    "Ack",
    "AckMode",
    "Action",
    "Answer",
    "AsyncLink",
    "CallDone",
    "CallStarted",
    "CallState",
    "CancelConsume",
    "ClientProtocol",
    "CloseChannel",
    "Connector",
    "Consume",
    "Consuming",
    "DeclareProfile",
    "DeclareQueue",
    "Delivery",
    "DeliveryState",
    "Event",
    "Finished",
    "Handler",
    "Ignored",
    "Invoke",
    "Link",
    "LinkSink",
    "NoSink",
    "NotFound",
    "Op",
    "Outcome",
    "PendingStats",
    "PendingTable",
    "Performed",
    "Properties",
    "Publish",
    "Qos",
    "QueueDeclared",
    "Received",
    "Registry",
    "Reject",
    "Request",
    "Returned",
    "ServerProtocol",
    "ServerStats",
    "WaitFor",
    "advance",
    "advance_async",
    "call_handler",
    "call_handler_async",
    "call_op",
    "cancel_consume_op",
    "checked_properties",
    "client_protocol",
    "client_setup_op",
    "close_op",
    "consume_op",
    "decode_content_header",
    "encode_content_header",
    "lenient_properties",
    "no_wait",
    "read_properties",
    "reply_queue_name",
    "request_deadline",
    "request_queue_declaration",
    "resume_op",
    "run",
    "run_async",
    "server_setup_op",
    "trace_context",
]
