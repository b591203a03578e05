"""The property mapping of PROTOCOL.md sections 3-5: requests, replies, error headers."""

from __future__ import annotations

import math

import pytest

from amqprpc import ProtocolViolation, UsageError
from amqprpc._envelope import (
    ERROR_HEADER,
    ERROR_TYPE_HEADER,
    MAX_ERROR_TEXT,
    REPLY_MARKER,
    ReplyInfo,
    checked_properties,
    error_reply_properties,
    expiration_ms,
    is_shortstr,
    lenient_properties,
    parse_call_id,
    parse_reply,
    parse_request,
    read_properties,
    reply_properties,
    request_properties,
)
from amqprpc._frames import decode_content_header, encode_content_header
from amqprpc.protocol import Properties, Request

QUEUE = "amq.gen-GvLZpdhsZX9O7gCg8GxTQg"
REQUEST = Request(method="Test.Div", reply_queue=QUEUE, call_id="4", body=b"{}")

# -- requests -------------------------------------------------------------------------------


def test_request_properties_use_the_naming_trap():
    properties = request_properties(
        method="Test.Mul", reply_queue=QUEUE, call_id=7, expiration="1500"
    )
    assert properties == Properties(
        reply_to="Test.Mul", correlation_id=QUEUE, message_id="7", expiration="1500"
    )


def test_parse_request_reads_the_three_fields():
    properties = Properties(reply_to="Test.Mul", correlation_id=QUEUE, message_id="abc")
    request = parse_request(properties, b"body")
    assert request == Request(method="Test.Mul", reply_queue=QUEUE, call_id="abc", body=b"body")


def test_parse_request_keeps_absent_fields_absent():
    request = parse_request(Properties(correlation_id=QUEUE), b"")
    assert request.method is None
    assert request.call_id is None


@pytest.mark.parametrize("correlation_id", [None, ""])
def test_parse_request_without_correlation_id_is_protocol_violation(correlation_id):
    properties = Properties(reply_to="Test.Mul", correlation_id=correlation_id, message_id="0")
    with pytest.raises(ProtocolViolation, match="correlation_id"):
        parse_request(properties, b"{}")


def test_a_request_needs_a_reply_queue():
    with pytest.raises(ProtocolViolation):
        parse_request(Properties(reply_to="Test.Mul", correlation_id=""), b"")


# -- replies --------------------------------------------------------------------------------


def test_reply_properties_copy_verbatim():
    request = Request(method="Test.Mul", reply_queue=QUEUE, call_id="abc", body=b"")
    assert reply_properties(request) == Properties(
        headers={"amqprpc-reply": "1"}, reply_to="Test.Mul", correlation_id=QUEUE,
        message_id="abc",
    )  # fmt: skip


def test_reply_properties_keep_absent_fields_absent():
    request = Request(method=None, reply_queue=QUEUE, call_id=None, body=b"")
    properties = reply_properties(request)
    assert properties.reply_to is None
    assert properties.message_id is None
    assert properties.headers == {REPLY_MARKER: "1"}  # the mark only (PROTOCOL.md 12.2)


@pytest.mark.parametrize(
    ("message_id", "call_id"),
    [("0", 0), ("42", 42), ("007", 7), ("18446744073709551615", 2**64 - 1)],
)
def test_parse_reply_success(message_id, call_id):
    info = parse_reply(Properties(message_id=message_id))
    assert info == ReplyInfo(call_id=call_id, error=None, error_type=None)


@pytest.mark.parametrize(
    "message_id",
    [None, "", "abc", "-1", "+1", " 1", "1 ", "1.0", "0x10", "١٢", "18446744073709551616",
     "9" * 255],
)  # fmt: skip
def test_parse_reply_without_a_call_number_is_protocol_violation(message_id):
    with pytest.raises(ProtocolViolation):
        parse_reply(Properties(message_id=message_id, headers={ERROR_HEADER: "boom"}))
    with pytest.raises(ProtocolViolation):
        parse_call_id(message_id)


def test_parse_reply_error():
    info = parse_reply(Properties(message_id="4", headers={ERROR_HEADER: "divide by zero"}))
    assert info == ReplyInfo(call_id=4, error="divide by zero", error_type=None)


def test_parse_reply_error_with_python_type():
    headers = {ERROR_HEADER: "boom", ERROR_TYPE_HEADER: "KeyError"}
    info = parse_reply(Properties(message_id="1", headers=headers))
    assert info.error == "boom"
    assert info.error_type == "KeyError"


@pytest.mark.parametrize("error_type", [b"KeyError", 5, "", None])
def test_parse_reply_ignores_odd_error_types(error_type):
    headers = {ERROR_HEADER: "boom", ERROR_TYPE_HEADER: error_type}
    info = parse_reply(Properties(message_id="1", headers=headers))
    assert info.error == "boom"
    assert info.error_type is None


@pytest.mark.parametrize(
    "headers",
    [{}, {ERROR_HEADER: ""}, {"other": "x"}, {ERROR_TYPE_HEADER: "X"}],
)
def test_empty_or_absent_error_header_is_success(headers):
    info = parse_reply(Properties(message_id="3", headers=headers))
    assert info == ReplyInfo(call_id=3, error=None, error_type=None)


@pytest.mark.parametrize("value", [b"boom", b"", 0, 7, False, 1.5, ["boom"], {"e": "x"}, None])
def test_error_header_of_wrong_type_is_reported_not_raised(value):
    # A void (None) error header fails a Go client's call too ("header not a string").
    info = parse_reply(Properties(message_id="9", headers={ERROR_HEADER: value}))
    assert info.call_id == 9
    assert info.error is None
    assert info.malformed_error is True
    assert info.bad_error_header == value
    assert type(info.bad_error_header) is type(value)


# -- error headers --------------------------------------------------------------------------


def test_error_reply_properties():
    properties = error_reply_properties(REQUEST, "divide by zero", "ZeroDivisionError")
    assert properties == Properties(
        headers={
            ERROR_HEADER: "divide by zero",
            ERROR_TYPE_HEADER: "ZeroDivisionError",
            REPLY_MARKER: "1",
        },
        reply_to="Test.Div",
        correlation_id=QUEUE,
        message_id="4",
    )


@pytest.mark.parametrize(
    ("text", "error_type", "expected"),
    [("", "KeyError", "KeyError"), ("", None, "error"), ("", "", "error"), ("x", None, "x")],
)
def test_error_text_is_never_empty(text, error_type, expected):
    headers = error_reply_properties(REQUEST, text, error_type).headers
    assert headers is not None
    assert headers[ERROR_HEADER] == expected
    assert parse_reply(Properties(message_id="4", headers=headers)).error == expected


def test_error_text_is_truncated_at_max():
    headers = error_reply_properties(REQUEST, "é" * (MAX_ERROR_TEXT + 1), None).headers
    assert headers is not None
    text = headers[ERROR_HEADER]
    assert isinstance(text, str)
    assert len(text) == MAX_ERROR_TEXT
    assert text.endswith("...")
    assert text.startswith("é" * (MAX_ERROR_TEXT - 3))


def test_error_text_at_max_is_kept_whole():
    headers = error_reply_properties(REQUEST, "x" * MAX_ERROR_TEXT, None).headers
    assert headers is not None
    assert headers[ERROR_HEADER] == "x" * MAX_ERROR_TEXT


def test_error_text_with_lone_surrogates_stays_sendable():
    # An OSError about an os.fsdecode()d path carries lone surrogates; the reply must still
    # encode as AMQP (UTF-8 long string).
    properties = error_reply_properties(REQUEST, "no such file: b\udcff.txt", "FileNotFoundError")
    _, decoded = decode_content_header(encode_content_header(properties, 2))
    assert decoded.headers == {
        ERROR_HEADER: "no such file: b?.txt",
        ERROR_TYPE_HEADER: "FileNotFoundError",
        REPLY_MARKER: "1",
    }


def test_error_reply_without_type_has_the_error_and_the_mark():
    headers = error_reply_properties(REQUEST, "boom", None).headers
    assert headers == {ERROR_HEADER: "boom", REPLY_MARKER: "1"}


# -- Properties -----------------------------------------------------------------------------

SHORTSTR_FIELDS = [
    "content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
    "message_id", "type", "user_id", "app_id", "cluster_id",
]  # fmt: skip


@pytest.mark.parametrize("field", SHORTSTR_FIELDS)
@pytest.mark.parametrize("value", ["x" * 256, "é" * 128, "\udcff", 5])
def test_checked_properties_drop_bad_shortstrs(field, value):
    # Checked where they enter: what a client library decoded is kept only if it has the
    # AMQP type, so the envelope parser decides what is malformed.
    checked = checked_properties(Properties(**{field: value, "message_id": "7"}))
    assert getattr(checked, field) is None or field == "message_id"
    if field != "message_id":
        assert checked.message_id == "7"


@pytest.mark.parametrize("field", SHORTSTR_FIELDS)
def test_checked_properties_decode_bytes(field):
    checked = checked_properties(Properties(**{field: b"bytes"}))
    assert getattr(checked, field) == "bytes"


@pytest.mark.parametrize("field", SHORTSTR_FIELDS)
@pytest.mark.parametrize("value", ["x" * 255, "é" * 127 + "x", ""])
def test_checked_properties_keep_shortstrs_up_to_255_bytes(field, value):
    properties = Properties(**{field: value})
    assert checked_properties(properties) is properties  # nothing to clean: no copy


@pytest.mark.parametrize("headers", ["error", [("error", "x")], 5])
def test_checked_properties_drop_non_mapping_headers(headers):
    assert checked_properties(Properties(headers=headers, reply_to="a.B")).headers is None


@pytest.mark.parametrize("field", ["delivery_mode", "priority", "timestamp"])
def test_checked_properties_drop_non_int_fields(field):
    assert getattr(checked_properties(Properties(**{field: "2"})), field) is None
    assert getattr(checked_properties(Properties(**{field: 2})), field) == 2


def test_usage_error_is_a_value_error():
    with pytest.raises(ValueError):
        expiration_ms(-1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", True), ("x" * 255, True), ("x" * 256, False), ("é" * 128, False), ("\ud800", False),
     (None, False), (b"x", False), (1, False)],
)  # fmt: skip
def test_is_shortstr(value, expected):
    assert is_shortstr(value) is expected


# -- lenient_properties ---------------------------------------------------------------------


def test_lenient_properties_keeps_good_fields():
    fields = {
        "reply_to": "Test.Mul",
        "correlation_id": QUEUE,
        "message_id": "0",
        "headers": {"error": "x"},
        "delivery_mode": 2,
        "priority": 0,
        "timestamp": 1700000000,
    }
    assert lenient_properties(fields) == Properties(**fields)  # type: ignore[arg-type]


def test_lenient_properties_decodes_bytes_leniently():
    fields = {
        "reply_to": b"Test.Mul",
        "message_id": bytearray(b"\xff1"),
        "headers": {b"error": b"raw", b"\xff": "k"},
    }
    properties = lenient_properties(fields)
    assert properties.reply_to == "Test.Mul"
    assert properties.message_id == "\ufffd1"
    assert properties.headers == {"error": b"raw", "\ufffd": "k"}  # values are left as sent


GARBAGE = [
    {"reply_to": 5, "correlation_id": 1.5, "message_id": ["0"], "expiration": object()},
    {"headers": "error=x", "delivery_mode": "2", "priority": True, "timestamp": 1.5},
    {"message_id": b"\xff" * 300, "reply_to": "x" * 256, "type": "\udcff"},
    {"headers": {1: "a", None: "b", (1, 2): "c"}},
    {"headers": ["error", "x"], "app_id": None, "unknown_field": "x"},
    {},
]


@pytest.mark.parametrize("fields", GARBAGE)
def test_lenient_properties_never_raises_on_garbage(fields):
    properties = lenient_properties(fields)
    assert isinstance(properties, Properties)
    for name in SHORTSTR_FIELDS:
        value = getattr(properties, name)
        assert value is None or is_shortstr(value)
    assert properties.headers is None or all(isinstance(k, str) for k in properties.headers)
    for name in ("delivery_mode", "priority", "timestamp"):
        value = getattr(properties, name)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))


def test_lenient_properties_drops_wrong_types():
    properties = lenient_properties(GARBAGE[0] | GARBAGE[1])
    assert properties == Properties()


def test_lenient_properties_stringifies_odd_header_keys():
    properties = lenient_properties(GARBAGE[3])
    assert properties.headers == {"1": "a", "None": "b", "(1, 2)": "c"}


def test_lenient_properties_then_parse_request_decides():
    properties = lenient_properties({"correlation_id": 42, "reply_to": "Test.Mul"})
    with pytest.raises(ProtocolViolation):
        parse_request(properties, b"")


# -- expiration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(1, "1000"), (2.5, "2500"), (0.25, "250"), (0.0001, "1"), (1e-9, "1"), (0.0015, "2"),
     (60.0, "60000"), (86400, "86400000")],
)  # fmt: skip
def test_expiration_is_whole_milliseconds_rounded_up(timeout, expected):
    assert expiration_ms(timeout) == expected
    assert int(expected) >= timeout * 1000
    assert int(expected) == math.ceil(timeout * 1000)


@pytest.mark.parametrize("timeout", [0, -1, 0.0, -0.0, float("nan"), float("inf"), True, "1", None])
def test_expiration_refuses_bad_timeouts(timeout):
    with pytest.raises(UsageError):
        expiration_ms(timeout)


class _LibraryProperties:
    """What a client library decodes: its own attribute names and timestamp type."""

    content_type = content_encoding = headers = delivery_mode = priority = None
    expiration = user_id = app_id = cluster_id = None
    correlation_id = "amq.gen-reply"
    reply_to = "Test.Mul"
    message_id = "7"
    message_type = "kind"

    def __init__(self, timestamp: object) -> None:
        self.timestamp = timestamp


def test_read_properties_maps_a_client_librarys_names_and_timestamps():
    import datetime

    stamp = datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)
    read = read_properties(
        _LibraryProperties(stamp),
        type_attr="message_type",
        timestamp=lambda v: None if v is None else int(v.timestamp()),
    )
    assert (read.reply_to, read.message_id, read.type) == ("Test.Mul", "7", "kind")
    assert read.timestamp == int(stamp.timestamp())


def test_read_properties_reads_an_odd_object_leniently():
    odd = _LibraryProperties("not a time")
    odd.reply_to = b"Test.Mul"  # type: ignore[assignment]  # bytes, as a library may give
    read = read_properties(odd, type_attr="missing", timestamp=lambda v: v.timestamp())
    assert (read.reply_to, read.timestamp, read.type) == ("Test.Mul", None, None)
