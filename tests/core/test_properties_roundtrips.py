"""Property-based tests: formatter round trips, and requests, replies and content headers
through the wire encoding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from amqprpc import Json, MsgPack
from amqprpc._envelope import (
    MAX_ERROR_TEXT,
    Request,
    error_reply_properties,
    parse_reply,
    parse_request,
    reply_properties,
    request_properties,
)
from amqprpc._frames import decode_content_header, encode_content_header

from .helpers import REPLY_QUEUE, wire
from .strategies import (
    SETTINGS,
    error_texts,
    json_values,
    msgpack_values,
    names,
    properties_strategy,
)

# -- formatter round trips --------------------------------------------------------------------


@SETTINGS
@given(json_values)
def test_json_round_trip(value):
    assert Json().unpack(Json().pack(value)) == value


@SETTINGS
@given(json_values)
def test_json_sorted_round_trip(value):
    assert Json(sort_keys=True).unpack(Json(sort_keys=True).pack(value)) == value


@SETTINGS
@given(msgpack_values)
def test_msgpack_round_trip_with_bytes_and_int_keys(value):
    assert MsgPack().unpack(MsgPack().pack(value)) == value


# -- envelope round trips -------------------------------------------------------------------


@SETTINGS
@given(properties_strategy, st.integers(0, 2**64 - 1))
def test_content_header_round_trip(properties, body_size):
    assert decode_content_header(encode_content_header(properties, body_size)) == (
        body_size,
        properties,
    )


@SETTINGS
@given(names, names, st.integers(0, 2**64 - 1), st.none() | st.integers(1, 10**9).map(str))
def test_request_round_trip(method, reply_queue, call_id, expiration):
    properties = request_properties(
        method=method, reply_queue=reply_queue, call_id=call_id, expiration=expiration
    )
    decoded = wire(properties, b"")
    assert decoded == properties
    request = parse_request(decoded, b"body")
    assert request == Request(
        method=method, reply_queue=reply_queue, call_id=str(call_id), body=b"body"
    )
    # The server's reply carries the number back, and the client reads the same call.
    assert parse_reply(wire(reply_properties(request), b"")).call_id == call_id


@SETTINGS
@given(names, st.integers(0, 2**64 - 1), error_texts, st.none() | names)
def test_error_reply_round_trip(method, call_id, text, error_type):
    request = Request(method=method, reply_queue=REPLY_QUEUE, call_id=str(call_id), body=b"")
    properties = error_reply_properties(request, text, error_type)
    info = parse_reply(wire(properties, b"{}"))  # always encodable
    assert info.call_id == call_id
    assert isinstance(info.error, str)
    assert info.error  # never empty
    assert len(info.error) <= MAX_ERROR_TEXT
    assert info.error_type == (error_type or None)
    if text and len(text) <= MAX_ERROR_TEXT:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates are replaced, the rest is kept
            assert info.error == text.encode("utf-8", "replace").decode("utf-8")
        else:
            assert info.error == text
