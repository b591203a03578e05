"""Content headers and field tables byte for byte: PROTOCOL.md section 10.1."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from amqprpc import EncodeError, ProtocolViolation
from amqprpc._envelope import error_reply_properties, reply_properties, request_properties
from amqprpc._frames import (
    decode_content_header,
    decode_field_table,
    encode_ack,
    encode_content_header,
    encode_field_table,
    encode_publish,
    encode_reject,
)
from amqprpc.protocol import Properties, Request

GO_QUEUE = "amq.gen-GvLZpdhsZX9O7gCg8GxTQg"

REQUEST_VECTOR = bytes.fromhex(
    "003c0000000000000000001706801e616d712e67656e2d47764c5a706468735a58394f376743673847785451"
    "6708546573742e4d756c0130"
)
ERROR_REPLY_VECTOR = bytes.fromhex(
    "003c00000000000000000001268000000019056572726f72530000000e646976696465206279207a65726f1e"
    "616d712e67656e2d47764c5a706468735a58394f3767436738477854516708546573742e4469760134"
)
ERROR_TABLE_VECTOR = bytes.fromhex("00000019056572726f72530000000e646976696465206279207a65726f")


def _flags(payload: bytes) -> int:
    return int(struct.unpack(">H", payload[12:14])[0])


def test_request_vector_encodes_byte_for_byte():
    properties = request_properties(
        method="Test.Mul", reply_queue=GO_QUEUE, call_id=0, expiration=None
    )
    payload = encode_content_header(properties, 23)
    assert payload == REQUEST_VECTOR
    assert _flags(payload) == 0x0680


def test_request_vector_decodes():
    body_size, properties = decode_content_header(REQUEST_VECTOR)
    assert body_size == 23
    assert properties == Properties(correlation_id=GO_QUEUE, reply_to="Test.Mul", message_id="0")


def test_error_reply_vector_encodes_byte_for_byte():
    properties = Properties(
        headers={"error": "divide by zero"}, correlation_id=GO_QUEUE, reply_to="Test.Div",
        message_id="4",
    )  # fmt: skip
    payload = encode_content_header(properties, 1)
    assert payload == ERROR_REPLY_VECTOR
    assert _flags(payload) == 0x2680


def test_python_error_reply_is_the_go_vector_plus_the_reply_mark():
    request = Request(method="Test.Div", reply_queue=GO_QUEUE, call_id="4", body=b"\x80")
    payload = encode_content_header(error_reply_properties(request, "divide by zero", None), 1)
    assert _flags(payload) == 0x2680
    _, decoded = decode_content_header(payload)
    _, vector = decode_content_header(ERROR_REPLY_VECTOR)
    assert decoded.headers == {**(vector.headers or {}), "amqprpc-reply": "1"}
    decoded.headers = vector.headers
    assert decoded == vector


def test_error_reply_vector_decodes():
    body_size, properties = decode_content_header(ERROR_REPLY_VECTOR)
    assert body_size == 1
    assert properties == Properties(
        headers={"error": "divide by zero"},
        correlation_id=GO_QUEUE,
        reply_to="Test.Div",
        message_id="4",
    )


def test_success_reply_has_request_flags_plus_the_mark_and_copies_fields():
    request = Request(method="Test.Mul", reply_queue=GO_QUEUE, call_id="0", body=b"")
    payload = encode_content_header(reply_properties(request), 9)
    assert _flags(payload) == 0x0680 | 0x2000  # a Go reply's flags, and headers for the mark
    table = encode_field_table({"amqprpc-reply": "1"})
    assert payload[14 : 14 + len(table)] == table
    assert payload[14 + len(table) :] == REQUEST_VECTOR[14:]  # same three properties, in order


def test_python_error_reply_adds_only_error_type_and_the_mark():
    request = Request(method="Test.Div", reply_queue=GO_QUEUE, call_id="4", body=b"")
    properties = error_reply_properties(request, "divide by zero", "ZeroDivisionError")
    payload = encode_content_header(properties, 1)
    assert _flags(payload) == 0x2680
    _, decoded = decode_content_header(payload)
    assert decoded.headers == {
        "error": "divide by zero", "error_type": "ZeroDivisionError", "amqprpc-reply": "1"
    }  # fmt: skip
    table = encode_field_table(decoded.headers)
    assert table[4:].startswith(ERROR_TABLE_VECTOR[4:])  # the Go entry first, unchanged


def test_headers_table_vector():
    assert encode_field_table({"error": "divide by zero"}) == ERROR_TABLE_VECTOR
    assert decode_field_table(ERROR_TABLE_VECTOR) == {"error": "divide by zero"}


def test_empty_table():
    assert encode_field_table({}) == b"\x00\x00\x00\x00"
    assert decode_field_table(b"\x00\x00\x00\x00") == {}


@pytest.mark.parametrize("value", [b"bytes", 1, 1.5, True, None, ["a"], {"a": "b"}])
def test_only_str_header_values_are_sent(value):
    # PROTOCOL.md 6: every header value we send is a str (field type 'S').
    with pytest.raises(EncodeError):
        encode_field_table({"k": value})


def test_encode_refuses_non_str_header_through_properties():
    with pytest.raises(EncodeError):
        encode_content_header(Properties(headers={"n": 40000}), 0)


def _entry(key: str, kind: bytes, raw: bytes) -> bytes:
    return bytes((len(key),)) + key.encode() + kind + raw


def _table(*entries: bytes) -> bytes:
    payload = b"".join(entries)
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        (b"t", b"\x01", True),
        (b"t", b"\x00", False),
        (b"b", b"\xff", -1),
        (b"B", b"\xff", 255),
        (b"s", b"\xff\xfe", -2),
        (b"u", b"\x9c\x40", 40000),
        (b"I", b"\xff\xff\xff\xff", -1),
        (b"i", b"\xb2\xd0\x5e\x00", 3000000000),
        (b"l", b"\xff" * 8, -1),
        (b"L", b"\xff" * 8, 2**64 - 1),
        (b"f", struct.pack(">f", 1.5), 1.5),
        (b"d", struct.pack(">d", -2.25), -2.25),
        (b"D", b"\x02\x00\x00\x04\xd2", Decimal("12.34")),
        (b"T", struct.pack(">Q", 1700000000), 1700000000),
        (b"S", b"\x00\x00\x00\x02\xc3\xa9", "é"),
        (b"S", b"\x00\x00\x00\x01\xff", b"\xff"),  # invalid UTF-8 never raises: kept as bytes
        (b"x", b"\x00\x00\x00\x02ab", b"ab"),
        (b"V", b"", None),
        (b"A", b"\x00\x00\x00\x04b\x01t\x01", [1, True]),
        (b"F", _table(_entry("in", b"S", b"\x00\x00\x00\x01x")), {"in": "x"}),
    ],
)
def test_decode_every_rabbitmq_field_type(kind, raw, value):
    decoded = decode_field_table(_table(_entry("k", kind, raw)))
    assert decoded == {"k": value}
    assert type(decoded["k"]) is type(value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x09\x01k",  # length beyond the data
        _table(_entry("k", b"Z", b"")),  # unknown field type
        _table(_entry("k", b"I", b"\x00")),  # truncated value
        _table(_entry("k", b"S", b"\x00\x00\x01\x00")),  # long string longer than table
        _table() + b"\x00",  # trailing bytes
    ],
)
def test_malformed_tables_are_protocol_violations(data):
    with pytest.raises(ProtocolViolation):
        decode_field_table(data)


def test_deeply_nested_tables_are_refused():
    table = _table()
    for _ in range(40):
        table = _table(_entry("n", b"F", table))
    with pytest.raises(ProtocolViolation, match="nested"):
        decode_field_table(table)
    nested_ok = _table()
    for _ in range(10):
        nested_ok = _table(_entry("n", b"F", nested_ok))
    assert decode_field_table(nested_ok)["n"] is not None


def test_lenient_content_header_keeps_too_deep_values_as_bytes():
    # What an adapter falls back on when its client library chokes (RabbitMQ passes on tables
    # of any depth): the message stays readable, a too-deep value stays undecoded.
    deep = _table()
    for _ in range(40):
        deep = _table(_entry("n", b"F", deep))
    array = b"\x00\x00\x00\x00"
    for _ in range(40):
        array = struct.pack(">I", len(array) + 1) + b"A" + array
    headers = _table(_entry("error", b"F", deep), _entry("list", b"A", array))
    payload = struct.pack(">HHQH", 60, 0, 2, 0x2000 | 0x0080) + headers + b"\x017"
    with pytest.raises(ProtocolViolation, match="nested"):
        decode_content_header(payload)
    body_size, properties = decode_content_header(payload, lenient=True)
    assert (body_size, properties.message_id) == (2, "7")
    assert properties.headers is not None
    level = properties.headers["error"]
    for _ in range(33):
        assert isinstance(level, dict)
        level = level["n"]
    assert isinstance(level, bytes)  # kept whole, undecoded
    items = properties.headers["list"]
    for _ in range(33):
        assert isinstance(items, list)
        items = items[0]
    assert isinstance(items, bytes)
    unknown = struct.pack(">HHQH", 60, 0, 0, 0x2000) + _table(_entry("k", b"Z", b""))
    with pytest.raises(ProtocolViolation, match="unknown"):
        decode_content_header(unknown, lenient=True)  # no length to skip it by


def test_all_properties_round_trip_in_flag_order():
    properties = Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"error": "x", "error_type": "ValueError"},
        delivery_mode=2,
        priority=9,
        correlation_id=GO_QUEUE,
        reply_to="Test.Mul",
        expiration="1500",
        message_id="18446744073709551615",
        timestamp=1700000000,
        type="t",
        user_id="guest",
        app_id="amqprpc",
        cluster_id="c",
    )
    payload = encode_content_header(properties, 2**40)
    assert _flags(payload) == 0xFFFC  # bits 15..2, all fourteen properties
    assert payload[:12] == bytes.fromhex("003c0000") + struct.pack(">Q", 2**40)
    assert decode_content_header(payload) == (2**40, properties)


def test_no_properties():
    payload = encode_content_header(Properties(), 0)
    assert payload == bytes.fromhex("003c 0000 0000000000000000 0000")
    assert decode_content_header(payload) == (0, Properties())


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        REQUEST_VECTOR[:13],
        REQUEST_VECTOR[:-1],  # message_id cut short
        REQUEST_VECTOR + b"\x00",  # trailing bytes
        b"\x00\x32" + REQUEST_VECTOR[2:],  # class 50 (queue), not basic
        bytes.fromhex("003c 0000 0000000000000000 2000 0000ffff"),  # table past the end
    ],
)
def test_malformed_content_headers_are_protocol_violations(payload):
    with pytest.raises(ProtocolViolation):
        decode_content_header(payload)


def test_invalid_utf8_shortstr_decodes_leniently():
    payload = bytes.fromhex("003c 0000 0000000000000000 0080 02ffff")
    _, properties = decode_content_header(payload)
    assert properties.message_id == "\ufffd\ufffd"


def test_header_keys_longer_than_a_short_string_are_refused():
    with pytest.raises(EncodeError, match="255 bytes"):
        encode_field_table({"k" * 256: "v"})


# -- whole frames: what the aio link writes itself ------------------------------------------


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def test_publish_frames_byte_for_byte() -> None:
    header = REQUEST_VECTOR  # PROTOCOL.md 10.1: a Go client's request header
    body = bytes.fromhex("82a141d30000000000000006a142d30000000000000007")  # 23 bytes
    _, properties = decode_content_header(header)
    method = bytes.fromhex("003c002800000007") + b"testrpc" + b"\x01"
    expected = frame(1, 5, method) + frame(2, 5, header) + frame(3, 5, body)
    assert (
        encode_publish(
            5, 131072, exchange="", routing_key="testrpc", mandatory=True,
            properties=properties, body=body,
        )
        == expected
    )  # fmt: skip


@pytest.mark.parametrize("frame_max", [9, 16, 100, 0])
def test_publish_splits_the_body_to_fit_frame_max(frame_max: int) -> None:
    body = bytes(range(256)) * 3
    data = encode_publish(
        1, frame_max, exchange="x", routing_key="k", mandatory=False,
        properties=Properties(message_id="1"), body=body,
    )  # fmt: skip
    frames, pos = [], 0
    while pos < len(data):
        kind, channel, size = struct.unpack(">BHI", data[pos : pos + 7])
        assert data[pos + 7 + size] == 0xCE and channel == 1
        frames.append((kind, data[pos + 7 : pos + 7 + size]))
        pos += 8 + size
    assert [k for k, _ in frames[:2]] == [1, 2]
    bodies = [payload for kind, payload in frames[2:]]
    assert all(kind == 3 for kind, _ in frames[2:]) and b"".join(bodies) == body
    if frame_max:
        assert all(len(b) + 8 <= frame_max for b in bodies)
    assert frames[0][1].endswith(b"\x00")  # not mandatory


def test_publish_of_an_empty_body_has_no_body_frame() -> None:
    data = encode_publish(
        1, 4096, exchange="", routing_key="q", mandatory=False,
        properties=Properties(), body=b"",
    )  # fmt: skip
    assert data.count(b"\xce") == 2


def test_ack_frame() -> None:
    assert encode_ack(3, 258, True) == frame(1, 3, bytes.fromhex("003c0050000000000000010201"))
    assert encode_ack(3, 1, False).endswith(b"\x00\xce")


def test_reject_frame() -> None:
    payload = bytes.fromhex("003c005a000000000000000700")  # basic.reject, no requeue
    assert encode_reject(2, 7, False) == frame(1, 2, payload)
