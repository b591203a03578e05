"""Request and reply envelopes: AMQP basic properties <-> amqprpc's fields.

Owns the property mapping of PROTOCOL.md sections 3-5, which uses AMQP properties unusually:
`reply_to` carries the method name, `correlation_id` the client's reply queue and
`message_id` the call number. Builds outgoing properties and validates incoming ones, turning
a missing or garbled field into `ProtocolViolation`. Must not encode bodies, keep state or do
I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ProtocolViolation, UsageError
from ._events import Request

__all__ = [
    "DEADLINE_HEADER",
    "DELIVERY_COUNT_HEADER",
    "ERROR_HEADER",
    "ERROR_TYPE_HEADER",
    "MAX_ERROR_TEXT",
    "REPLY_MARKER",
    "Properties",
    "ReplyInfo",
    "checked_properties",
    "error_reply_properties",
    "expiration_ms",
    "is_reply_to",
    "is_request_to",
    "is_shortstr",
    "lenient_properties",
    "parse_call_id",
    "parse_reply",
    "parse_request",
    "read_properties",
    "reply_properties",
    "request_properties",
]

ERROR_HEADER = "error"
ERROR_TYPE_HEADER = "error_type"
# PROTOCOL.md section 12: the caller's absolute deadline (Unix milliseconds, a decimal string)
# on requests, and the mark on every reply, which a server never runs as a request.
DEADLINE_HEADER = "amqprpc-deadline"
REPLY_MARKER = "amqprpc-reply"
# Set by quorum queues on a redelivery: how many times the message was delivered before.
DELIVERY_COUNT_HEADER = "x-delivery-count"
_MAX_DEADLINE_DIGITS = 15  # Unix milliseconds stay at 13 digits until the year 2286
# Error texts travel in a header; a content-header frame must fit in the negotiated frame
# size (RabbitMQ's default frame_max is 128 KiB), so long texts are cut to this many chars.
MAX_ERROR_TEXT = 8192
_SHORTSTR_MAX = 255  # AMQP 0-9-1 section 4.2.5.3: shortstr is at most 255 octets
_UINT64_LIMIT = 1 << 64

_INT_FIELDS = ("delivery_mode", "priority", "timestamp")
_SHORTSTR_FIELDS = (
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


@dataclass(slots=True, kw_only=True)
class Properties:
    """AMQP 0-9-1 basic properties (the content header), with the AMQP field names.

    Not checked when made: the core builds them from values it has checked, and what comes
    from the wire goes through `checked_properties` or `lenient_properties` first.
    """

    content_type: str | None = None
    content_encoding: str | None = None
    headers: Mapping[str, object] | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None


def checked_properties(properties: Properties) -> Properties:
    """`properties` as they came from a client library, if every field has its AMQP type;
    otherwise the lenient reading of them (see `lenient_properties`). Never raises."""
    p = properties
    for value in (
        p.correlation_id, p.reply_to, p.message_id, p.expiration, p.content_type,
        p.content_encoding, p.type, p.user_id, p.app_id, p.cluster_id,
    ):  # fmt: skip
        if value is not None and not (
            value.__class__ is str and value.isascii() and len(value) <= _SHORTSTR_MAX
        ):
            if not is_shortstr(value):  # not ASCII, or not a str at all
                return _lenient_copy(p)
    for number in (p.delivery_mode, p.priority, p.timestamp):
        if number is not None and number.__class__ is not int:
            return _lenient_copy(p)
    if p.headers is not None and not isinstance(p.headers, Mapping):
        return _lenient_copy(p)
    return p


def read_properties(
    props: Any, *, type_attr: str = "type", timestamp: Callable[[Any], object] = lambda v: v
) -> Properties:
    """Properties from a client library's decoded properties object, checked where they enter
    (`checked_properties`). `type_attr` names its `type` attribute; `timestamp` turns its
    timestamp into Unix seconds. Never raises: an odd object is read leniently."""
    try:  # what arrives is nearly always well-formed: read it in one go, then check it
        return checked_properties(
            Properties(
                content_type=props.content_type,
                content_encoding=props.content_encoding,
                headers=props.headers,
                delivery_mode=props.delivery_mode,
                priority=props.priority,
                correlation_id=props.correlation_id,
                reply_to=props.reply_to,
                expiration=props.expiration,
                message_id=props.message_id,
                timestamp=timestamp(props.timestamp),  # type: ignore[arg-type]
                type=getattr(props, type_attr),
                user_id=props.user_id,
                app_id=props.app_id,
                cluster_id=props.cluster_id,
            )
        )
    except (AttributeError, TypeError, ValueError, OverflowError, OSError):
        pass
    fields = {name: getattr(props, name, None) for name in Properties.__slots__}
    fields["type"] = getattr(props, type_attr, None)
    try:
        fields["timestamp"] = timestamp(fields["timestamp"])
    except (AttributeError, TypeError, ValueError, OverflowError, OSError):
        fields["timestamp"] = None
    return lenient_properties(fields)


def _lenient_copy(properties: Properties) -> Properties:
    return lenient_properties({name: getattr(properties, name) for name in Properties.__slots__})


def is_shortstr(value: object) -> bool:
    """Whether `value` is a str that fits an AMQP shortstr (at most 255 UTF-8 bytes)."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return len(value) <= _SHORTSTR_MAX
    try:
        return len(value.encode("utf-8")) <= _SHORTSTR_MAX
    except UnicodeEncodeError:  # lone surrogates cannot travel as UTF-8
        return False


def lenient_properties(fields: Mapping[str, object]) -> Properties:
    """Build Properties from whatever a client library decoded, never raising.

    Adapters use this for incoming messages, where anything may arrive: bytes are decoded as
    UTF-8 (undecodable bytes become U+FFFD), and values of the wrong type are dropped, so that
    the envelope parser, not the adapter, decides what is malformed.
    """
    clean: dict[str, object] = {}
    for name in _SHORTSTR_FIELDS:
        value = fields.get(name)
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if isinstance(value, str) and is_shortstr(value):
            clean[name] = value
    headers = fields.get("headers")
    if isinstance(headers, Mapping):
        clean["headers"] = {
            (k.decode("utf-8", "replace") if isinstance(k, (bytes, bytearray)) else str(k)): v
            for k, v in headers.items()
        }
    for name in _INT_FIELDS:
        value = fields.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            clean[name] = value
    return Properties(**clean)  # type: ignore[arg-type]


def expiration_ms(timeout: float) -> str:
    """The AMQP `expiration` for a call timeout: whole milliseconds, rounded up, as a string.

    Raises UsageError unless `timeout` is a finite number greater than zero.
    """
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise UsageError(f"timeout must be a number of seconds, not {timeout!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise UsageError(f"timeout must be a finite number of seconds > 0, not {timeout!r}")
    return str(math.ceil(timeout * 1000))


def request_properties(
    *, method: str, reply_queue: str, call_id: int, expiration: str | None,
    deadline_ms: int | None = None, trace: Mapping[str, str] | None = None,
) -> Properties:  # fmt: skip
    """Properties of a request (PROTOCOL.md section 3), with the caller's absolute deadline in
    Unix milliseconds when given (section 12.1) and the trace context headers `trace`
    (`traceparent`, `tracestate`: section 12.3)."""
    headers: dict[str, object] | None = None
    if deadline_ms is not None:
        headers = {DEADLINE_HEADER: str(deadline_ms)}
    if trace:
        headers = {**trace, **(headers or {})}
    return Properties(
        headers=headers,
        reply_to=method,
        correlation_id=reply_queue,
        message_id=str(call_id),
        expiration=expiration,
    )


def parse_request(properties: Properties, body: bytes) -> Request:
    """Validate an incoming request's properties.

    Returns the Request, with the caller's deadline (Unix seconds) when it sent a well-formed
    one and whether it carries the reply mark. Raises ProtocolViolation when it carries no
    `correlation_id`: such a request cannot be answered (and would stop a Go server for good:
    PROTOCOL.md section 3).
    """
    if not properties.correlation_id:
        raise ProtocolViolation("request has no correlation_id (reply queue): cannot reply")
    request = Request(
        method=properties.reply_to,
        reply_queue=properties.correlation_id,
        call_id=properties.message_id,
        body=body,
    )
    headers = properties.headers
    if headers:  # Go clients send none
        request.is_reply = REPLY_MARKER in headers
        count = headers.get(DELIVERY_COUNT_HEADER)
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            request.delivery_count = count
        if DEADLINE_HEADER in headers:
            request.deadline = _deadline(headers[DEADLINE_HEADER])
            request.bad_deadline = request.deadline is None
    return request


def _deadline(value: object) -> float | None:
    # A decimal string of Unix milliseconds; anything else is malformed (None).
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_DEADLINE_DIGITS
        and value.isascii()
        and value.isdecimal()
    ):
        return int(value) / 1000
    return None


def reply_properties(request: Request) -> Properties:
    """Properties of a success reply: reply_to, correlation_id, message_id copied (section 4),
    and the reply mark (section 12.2)."""
    return Properties(
        headers={REPLY_MARKER: "1"},
        reply_to=request.method,
        correlation_id=request.reply_queue,
        message_id=request.call_id,
    )


def _utf8_safe(text: str) -> str:
    # Header values travel as UTF-8 (AMQP longstr). Lone surrogates, as in an OSError about an
    # os.fsdecode()d path, cannot, and would make the error reply unsendable: replace them.
    return text.encode("utf-8", "replace").decode("utf-8")


def error_reply_properties(request: Request, text: str, error_type: str | None) -> Properties:
    """Properties of an error reply: as a success reply, plus string-only error headers.

    Every header value is a `str` (AMQP field type 'S'), the only kind every Go client reads
    safely (PROTOCOL.md sections 5-6). An empty text would read as success to a Go client, so
    it is replaced by the error type, or by "error".
    """
    text = _utf8_safe(text or error_type or "error")
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    headers: dict[str, object] = {ERROR_HEADER: text}
    if error_type:
        headers[ERROR_TYPE_HEADER] = _utf8_safe(error_type)
    headers[REPLY_MARKER] = "1"
    return Properties(
        headers=headers,
        reply_to=request.method,
        correlation_id=request.reply_queue,
        message_id=request.call_id,
    )


def parse_call_id(message_id: str | None) -> int:
    """A call number as the client issued it: a decimal uint64.

    Raises ProtocolViolation for anything else (absent, empty, non-decimal, out of range).
    """
    if not message_id or not (message_id.isascii() and message_id.isdecimal()):
        raise ProtocolViolation(f"message_id is not a decimal call number: {message_id!r}")
    value = int(message_id)
    if value >= _UINT64_LIMIT:
        raise ProtocolViolation(f"message_id is out of the uint64 range: {message_id!r}")
    return value


@dataclass(slots=True, kw_only=True)
class ReplyInfo:
    """What a reply's properties say: whose call it answers and whether it failed."""

    call_id: int
    error: str | None  # a non-empty error text, or None for success
    error_type: str | None
    bad_error_header: object = None  # the value of an `error` header that is not a str
    malformed_error: bool = False  # an `error` header is present but not a str (even void)


def parse_reply(properties: Properties) -> ReplyInfo:
    """Read a reply's properties (PROTOCOL.md section 5).

    Returns ReplyInfo. Raises ProtocolViolation when `message_id` is not a call number (no call
    can be identified). An `error` header of a type other than `str` (void included, as a Go
    client sees it) does not raise: `malformed_error` reports it, so that only the call it
    answers fails.
    """
    call_id = parse_call_id(properties.message_id)
    headers = properties.headers
    if not headers or ERROR_HEADER not in headers:
        return ReplyInfo(call_id=call_id, error=None, error_type=None)
    error = headers[ERROR_HEADER]
    if not isinstance(error, str):
        return ReplyInfo(
            call_id=call_id,
            error=None,
            error_type=None,
            bad_error_header=error,
            malformed_error=True,
        )
    if not error:  # an empty text means success to a Go client too
        return ReplyInfo(call_id=call_id, error=None, error_type=None)
    error_type = headers.get(ERROR_TYPE_HEADER)
    type_name = error_type if isinstance(error_type, str) and error_type else None
    return ReplyInfo(call_id=call_id, error=error, error_type=type_name)


def is_reply_to(routing_key: str, properties: Properties) -> bool:
    """Whether a message published to queue `routing_key` is an RPC reply: it goes to the
    reply queue its `correlation_id` names (section 4), as every amqprpc or Go server's does."""
    return routing_key == properties.correlation_id


def is_request_to(routing_key: str, properties: Properties) -> bool:
    """Whether a message published to queue `routing_key` is an RPC request: it names a reply
    queue and a method (section 3) and is not itself a reply."""
    return (
        bool(properties.correlation_id)
        and properties.reply_to is not None
        and not is_reply_to(routing_key, properties)
    )
