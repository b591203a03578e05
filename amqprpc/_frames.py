"""AMQP 0-9-1 content headers and field tables, byte for byte.

Owns the binary form of `Properties` (AMQP 0-9-1 section 4.2.6.1, "content header" payload,
class 60 `basic`) and of field tables (section 4.2.5.5, with RabbitMQ's field-type letters as
listed in its errata). It is the reference that the test vectors of PROTOCOL.md section 10.1
are checked against, and what an adapter may use to build frames itself, or to read a content
header its client library cannot decode (`lenient=True`). Encoding accepts only the header
value types amqprpc ever sends: `str` (type 'S'), which every Go peer reads (PROTOCOL.md
section 6). Decoding reads every type RabbitMQ knows. Must not do I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from decimal import Decimal

from ._envelope import Properties, lenient_properties
from ._errors import EncodeError, ProtocolViolation

__all__ = [
    "FRAME_OVERHEAD",
    "decode_content_header",
    "decode_field_table",
    "encode_ack",
    "encode_content_header",
    "encode_field_table",
    "encode_publish",
    "encode_reject",
]

_BASIC_CLASS = 60
# (flag bit, property name, kind) in the order the properties follow the flags word.
_LAYOUT = (
    (15, "content_type", "s"),
    (14, "content_encoding", "s"),
    (13, "headers", "F"),
    (12, "delivery_mode", "o"),
    (11, "priority", "o"),
    (10, "correlation_id", "s"),
    (9, "reply_to", "s"),
    (8, "expiration", "s"),
    (7, "message_id", "s"),
    (6, "timestamp", "T"),
    (5, "type", "s"),
    (4, "user_id", "s"),
    (3, "app_id", "s"),
    (2, "cluster_id", "s"),
)


_HEAD = struct.Struct(">HHQH")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PRESENT = tuple((1 << bit, name, kind) for bit, name, kind in _LAYOUT)


def _shortstr(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise EncodeError(f"a short string is at most 255 bytes: {value[:40]!r}...")
    return bytes((len(raw),)) + raw


def encode_field_table(table: Mapping[str, object]) -> bytes:
    """Encode a field table whose values are all `str` (type 'S').

    Raises EncodeError for any other value type: amqprpc sends string headers only.
    """
    parts = []
    for key, value in table.items():
        if not isinstance(value, str):
            raise EncodeError(
                f"header {key!r}: only str values are sent, not {type(value).__name__}"
            )
        raw = value.encode("utf-8")
        parts.append(_shortstr(key) + b"S" + struct.pack(">I", len(raw)) + raw)
    payload = b"".join(parts)
    return struct.pack(">I", len(payload)) + payload


def encode_content_header(properties: Properties, body_size: int) -> bytes:
    """The payload of a content-header frame for `properties` and a body of `body_size` bytes."""
    flags = 0
    parts = []
    for bit, name, kind in _LAYOUT:
        value = getattr(properties, name)
        if value is None:
            continue
        flags |= 1 << bit
        if kind == "s":
            parts.append(_shortstr(value))
        elif kind == "F":
            parts.append(encode_field_table(value))
        elif kind == "o":
            parts.append(struct.pack(">B", value))
        else:
            parts.append(struct.pack(">Q", value))
    return struct.pack(">HHQH", _BASIC_CLASS, 0, body_size, flags) + b"".join(parts)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise ProtocolViolation(f"truncated frame: need {count} bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str) -> int | float:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return value  # type: ignore[no-any-return]

    def shortstr(self) -> str:
        return self.take(self.take(1)[0]).decode("utf-8", "replace")

    def longstr(self) -> bytes:
        return self.take(int(self.unpack(">I")))


_FIXED = {
    "b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I",
    "l": ">q", "L": ">Q", "f": ">f", "d": ">d", "T": ">Q",
}  # fmt: skip


_MAX_DEPTH = 32  # tables nested deeper than this are not decoded (recursion is not free)


def _field_value(reader: _Reader, depth: int, lenient: bool) -> object:
    kind = chr(reader.take(1)[0])
    if kind in _FIXED:
        return reader.unpack(_FIXED[kind])
    if kind == "t":
        return reader.take(1) != b"\x00"
    if kind == "S":
        raw = reader.longstr()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:  # kept as bytes, as pika and pamqp keep it: not a str
            return raw
    if kind == "x":
        return reader.longstr()
    if kind == "V":
        return None
    if kind == "D":
        scale = int(reader.unpack(">B"))
        return Decimal(int(reader.unpack(">i"))).scaleb(-scale)
    if depth > _MAX_DEPTH:
        if lenient and kind in "FA":
            # Both carry their length first, so the value can be kept whole, undecoded, as
            # bytes: any value but a str reads as malformed where amqprpc looks (`error`).
            return reader.longstr()
        raise ProtocolViolation("field table nested too deeply")
    if kind == "F":
        return _table(_Reader(reader.longstr()), depth + 1, lenient)
    if kind == "A":
        inner = _Reader(reader.longstr())
        items = []
        while inner.pos < len(inner.data):
            items.append(_field_value(inner, depth + 1, lenient))
        return items
    raise ProtocolViolation(f"unknown field type {kind!r}")


def _table(reader: _Reader, depth: int, lenient: bool = False) -> dict[str, object]:
    table = {}
    while reader.pos < len(reader.data):
        key = reader.shortstr()
        table[key] = _field_value(reader, depth, lenient)
    return table


def decode_field_table(data: bytes) -> dict[str, object]:
    """Decode a field table (4-byte length prefix included).

    Raises ProtocolViolation when it is truncated or holds an unknown field type.
    """
    reader = _Reader(data)
    table = _table(_Reader(reader.longstr()), 0)
    if reader.pos != len(data):
        raise ProtocolViolation("trailing bytes after field table")
    return table


def decode_content_header(payload: bytes, *, lenient: bool = False) -> tuple[int, Properties]:
    """Decode a content-header payload.

    Returns (body size, Properties). Raises ProtocolViolation when it is malformed. With
    `lenient`, a header value nested too deeply to decode is kept as its raw bytes instead: an
    adapter uses this to read a delivery its client library choked on, since RabbitMQ
    passes on tables of any depth and the rest of such a message can still be answered.
    """
    # On every delivery's path: slices and struct, no reader object, one check of the result.
    end = len(payload)
    if end < 14:
        raise ProtocolViolation(f"truncated frame: a content header of {end} bytes")
    class_id, _weight, body_size, flags = _HEAD.unpack_from(payload, 0)
    if class_id != _BASIC_CLASS:
        raise ProtocolViolation(f"content header of class {class_id}, not basic (60)")
    fields: dict[str, object] = {}
    replaced = False
    pos = 14
    try:
        for mask, name, kind in _PRESENT:
            if not flags & mask:
                continue
            if kind == "s":
                stop = pos + 1 + payload[pos]
                if stop > end:
                    raise IndexError(name)
                text = payload[pos + 1 : stop].decode("utf-8", "replace")
                replaced = replaced or "\ufffd" in text  # not UTF-8: may now be too long
                fields[name] = text
                pos = stop
            elif kind == "F":
                stop = pos + 4 + _U32.unpack_from(payload, pos)[0]
                if stop > end:
                    raise IndexError(name)
                fields[name] = _table(_Reader(payload[pos + 4 : stop]), 0, lenient)
                pos = stop
            elif kind == "o":
                fields[name] = payload[pos]
                pos += 1
            else:
                fields[name] = _U64.unpack_from(payload, pos)[0]
                pos += 8
    except (IndexError, struct.error) as exc:
        raise ProtocolViolation(f"truncated frame: content header cut in {exc}") from None
    if pos != end:
        raise ProtocolViolation("trailing bytes after content header properties")
    if replaced:  # e.g. a short string that decoded to more than 255 bytes
        return body_size, lenient_properties(fields)
    return body_size, Properties(**fields)  # type: ignore[arg-type]


# -- whole frames (AMQP 0-9-1 section 4.2.3: type, channel, size, payload, frame-end) ----------

FRAME_OVERHEAD = 8  # 7-byte frame header + 1-byte frame-end: a body frame holds frame_max - 8
_FRAME_END = b"\xce"
_METHOD, _HEADER, _BODY = 1, 2, 3
_PUBLISH = struct.pack(">HHH", _BASIC_CLASS, 40, 0)  # basic.publish, reserved-1 (ticket) 0
_ACK = struct.pack(">HH", _BASIC_CLASS, 80)  # basic.ack
_REJECT = struct.pack(">HH", _BASIC_CLASS, 90)  # basic.reject


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + _FRAME_END


def encode_publish(
    channel: int,
    frame_max: int,
    *,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    properties: Properties,
    body: bytes,
) -> bytes:
    """The frames of one basic.publish: method, content header, body split to `frame_max`.

    Returns them as one bytes object, so that an adapter can send a message in one write.
    """
    method = (
        _PUBLISH
        + _shortstr(exchange)
        + _shortstr(routing_key)
        + (b"\x01" if mandatory else b"\x00")
    )
    parts = [
        _frame(_METHOD, channel, method),
        _frame(_HEADER, channel, encode_content_header(properties, len(body))),
    ]
    step = max(frame_max - FRAME_OVERHEAD, 1) if frame_max else len(body) or 1
    for start in range(0, len(body), step):
        parts.append(_frame(_BODY, channel, body[start : start + step]))
    return b"".join(parts)


def encode_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """The frame of one basic.ack."""
    payload = _ACK + struct.pack(">QB", delivery_tag, 1 if multiple else 0)
    return _frame(_METHOD, channel, payload)


def encode_reject(channel: int, delivery_tag: int, requeue: bool) -> bytes:
    """The frame of one basic.reject."""
    payload = _REJECT + struct.pack(">QB", delivery_tag, 1 if requeue else 0)
    return _frame(_METHOD, channel, payload)
