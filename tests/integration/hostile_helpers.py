"""What the hostile tests share: the formats, the fuzzing settings, and content headers
written byte for byte.

Content headers are written byte for byte (`RawProperties`), so that anything can be sent:
what pika refuses (non-UTF-8 short strings, timestamps beyond year 9999), the integer and float
field types only pamqp (aioamqp's and aiormq's encoder) produces, and tables nested deeper than
Python's recursion limit. Only what RabbitMQ itself refuses is left out: unknown field types,
NaN and infinite floats, invalid `expiration`, `user_id` or `delivery_mode`, and the `CC`/`BCC`
routing headers.
"""

from __future__ import annotations

import struct
from typing import Any

import pika
import pika.data
import pytest
from hypothesis import HealthCheck, settings

import amqprpc

FORMATS = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}
MAX_BODY = 4096  # the servers' max_body_size, so that "too large" is cheap to send
FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(params=list(FORMATS))
def formatter(request: pytest.FixtureRequest) -> Any:
    return FORMATS[request.param]


# -- content headers byte for byte (AMQP 0-9-1 section 4.2.6.1) --------------------------------

_FLAGS = {
    "content_type": 0x8000,
    "content_encoding": 0x4000,
    "headers": 0x2000,
    "delivery_mode": 0x1000,
    "priority": 0x0800,
    "correlation_id": 0x0400,
    "reply_to": 0x0200,
    "expiration": 0x0100,
    "message_id": 0x0080,
    "timestamp": 0x0040,
    "type": 0x0020,
    "user_id": 0x0010,
    "app_id": 0x0008,
    "cluster_id": 0x0004,
}


def shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    assert len(raw) <= 255
    return bytes((len(raw),)) + raw


def longstr(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def entry(key: str | bytes, kind: bytes, raw: bytes = b"") -> bytes:
    """One field-table entry: key, field type, encoded value."""
    return shortstr(key) + kind + raw


def table(*entries: bytes) -> bytes:
    return longstr(b"".join(entries))


def pika_entry(key: str, value: object) -> bytes:
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, {key: value})
    return b"".join(pieces)[4:]


# Field types pamqp 4 writes and pika never does: b/s/u/i/l for ints, f for floats, x for
# byte arrays (encoded here, since pamqp 3 on Python 3.10 cannot encode all of them).
PAMQP_INTS = table(
    entry("-1", b"b", struct.pack(">b", -1)),
    entry("300", b"s", struct.pack(">h", 300)),
    entry("40000", b"u", struct.pack(">H", 40000)),
    entry("2147483648", b"i", struct.pack(">I", 2**31)),
    entry("-1099511627776", b"l", struct.pack(">q", -(2**40))),
)
def pamqp_entry(key: str, value: object) -> bytes:
    """One field-table entry typed as pamqp 4 types it (b/s/u/I/i/l for ints by range, f for
    floats, x for byte arrays), encoded here: pamqp 3 (Python 3.10) fails on some."""
    return shortstr(key) + _pamqp_value(value)


def _pamqp_value(value: object) -> bytes:
    if value is None:
        return b"V"
    if isinstance(value, bool):
        return b"t" + bytes((value,))
    if isinstance(value, int):
        for kind, fmt, low, high in _INT_TYPES:
            if low <= value <= high:
                return kind + struct.pack(fmt, value)
        raise ValueError(value)
    if isinstance(value, float):
        return b"f" + struct.pack(">f", value)
    if isinstance(value, bytearray):
        return b"x" + longstr(bytes(value))
    if isinstance(value, str):
        return b"S" + longstr(value.encode())
    if isinstance(value, list):
        return b"A" + longstr(b"".join(_pamqp_value(item) for item in value))
    if isinstance(value, dict):
        return b"F" + table(*(pamqp_entry(k, v) for k, v in value.items()))
    raise TypeError(value)


_INT_TYPES = [
    (b"b", ">b", -(2**7), 2**7 - 1),
    (b"s", ">h", -(2**15), 2**15 - 1),
    (b"u", ">H", 0, 2**16 - 1),
    (b"I", ">i", -(2**31), 2**31 - 1),
    (b"i", ">I", 0, 2**32 - 1),
    (b"l", ">q", -(2**63), 2**63 - 1),
]
PAMQP_FLOAT = table(entry("f", b"f", struct.pack(">f", 1.5)), entry("x", b"x", longstr(b"\xff")))


def nested_array(depth: int) -> bytes:
    value = b"V"
    for _ in range(depth):
        value = b"A" + longstr(value)
    return value[1:]  # without its own type letter


class RawProperties(pika.BasicProperties):
    """Properties sent exactly as given: each present property as its encoded bytes.

    pika writes a content header from `encode()`, so this sends what pika's encoder refuses.
    """

    def __init__(self, **fields: bytes) -> None:
        super().__init__()
        self.raw = fields

    def encode(self) -> list[bytes]:
        flags = 0
        parts = []
        for name, bit in _FLAGS.items():
            if name in self.raw:
                flags |= bit
                parts.append(self.raw[name])
        return [struct.pack(">H", flags), *parts]


def raw(**fields: str | bytes | int | None) -> RawProperties:
    """RawProperties from plain values: str/bytes short strings (bytes need not be UTF-8),
    int octets and timestamps, `headers` as an encoded table. None leaves a property out."""
    encoded = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "headers":
            assert isinstance(value, bytes)
            encoded[name] = value
        elif name == "timestamp":
            assert isinstance(value, int)
            encoded[name] = struct.pack(">Q", value)
        elif name in ("delivery_mode", "priority"):
            assert isinstance(value, int)
            encoded[name] = struct.pack(">B", value)
        else:
            assert isinstance(value, (str, bytes))
            encoded[name] = shortstr(value)
    return RawProperties(**encoded)


HUGE_TIMESTAMP = entry("ts", b"T", struct.pack(">Q", 2**64 - 1))  # year 584 million
DEEP = entry("deep", b"A", nested_array(3000))  # deeper than Python's recursion limit
BAD_KEY = entry(b"\xff\xfekey", b"S", longstr(b"x"))  # a key that is not UTF-8
EVERY_TYPE = table(  # one of each field type RabbitMQ passes on
    entry("t", b"t", b"\x01"),
    entry("b", b"b", b"\x80"),
    entry("B", b"B", b"\xff"),
    entry("s", b"s", b"\x80\x00"),
    entry("u", b"u", b"\xff\xff"),
    entry("I", b"I", b"\x80\x00\x00\x00"),
    entry("i", b"i", b"\xff\xff\xff\xff"),
    entry("l", b"l", b"\x80" + b"\x00" * 7),
    entry("L", b"L", b"\xff" * 8),
    entry("f", b"f", struct.pack(">f", -1.5)),
    entry("d", b"d", struct.pack(">d", 2.5e300)),
    entry("D", b"D", b"\xff\x7f\xff\xff\xff"),
    entry("S", b"S", longstr("é".encode())),
    entry("x", b"x", longstr(b"\x00\xff")),
    entry("A", b"A", longstr(b"V" + b"t\x00")),
    entry("T", b"T", struct.pack(">Q", 0)),
    entry("F", b"F", table(entry("in", b"V"))),
    entry("V", b"V"),
    entry("", b"V"),
    entry("k" * 255, b"V"),
)


def echoed(message_id: str | bytes | None) -> str | None:
    """The message_id a reply to `message_id` carries.

    Copied verbatim. The exception: bytes that are not UTF-8 (AMQP 0-9-1 section 4.2.5.3 says
    short strings are UTF-8) come back with U+FFFD for each bad byte, and are left out when
    that no longer fits a shortstr.
    """
    if not isinstance(message_id, bytes):
        return message_id
    text = message_id.decode("utf-8", "replace")
    return text if len(text.encode()) <= 255 else None
