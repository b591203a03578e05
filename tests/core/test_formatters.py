"""Json and MsgPack against PROTOCOL.md section 8 and every body vector of section 10.2."""

from __future__ import annotations

import datetime

import msgpack
import pytest

import amqprpc
from amqprpc import EncodeError, Formatter, Json, MsgPack, ProtocolViolation, UsageError
from amqprpc._formatters import as_formatter, pack_body, unpack_body

X40 = "x" * 40
UTC = datetime.timezone.utc

# -- PROTOCOL.md 10.2, Go-produced: (case, JSON body, msgpack hex, JSON value, msgpack value) --
GO_PRODUCED = [
    ("mul-args", b'{"A":6,"B":7}', "82a141d30000000000000006a142d30000000000000007",
     {"A": 6, "B": 7}, {"A": 6, "B": 7}),
    ("mul-result", b"42", "d3000000000000002a", 42, 42),
    ("mul-negative", b"-15", "d3fffffffffffffff1", -15, -15),
    ("div-result", b'{"Quo":3,"Rem":1}',
     "82a351756fd30000000000000003a352656dd30000000000000001",
     {"Quo": 3, "Rem": 1}, {"Quo": 3, "Rem": 1}),
    ("error-body", b"{}", "80", {}, {}),
    ("sleep-args", b'{"Ms":50}', "81a24d73d30000000000000032", {"Ms": 50}, {"Ms": 50}),
    ("sleep-result", b"true", "c3", True, True),
    ("nil", b"null", "c0", None, None),
    ("string", b'"hello"', "a568656c6c6f", "hello", "hello"),
    ("string-40", b'"' + X40.encode() + b'"', "d928" + "78" * 40, X40, X40),
    ("bytes", b'"AQID"', "c403010203", "AQID", b"\x01\x02\x03"),
    ("float-3.0", b"3", "cb4008000000000000", 3, 3.0),
    ("uint64-max", b"18446744073709551615", "cfffffffffffffffff",
     18446744073709551615, 18446744073709551615),
    ("int-keys", b'{"1":"a"}', "81d30000000000000001a161", {"1": "a"}, {1: "a"}),
    ("time-ns", b'"2024-01-02T03:04:05.000000006Z"', "d7ff0000001865937d25",
     "2024-01-02T03:04:05.000000006Z", msgpack.Timestamp(seconds=1704164645, nanoseconds=6)),
    ("time-s", b'"2023-11-14T22:13:20Z"', "d6ff6553f100",
     "2023-11-14T22:13:20Z", msgpack.Timestamp(seconds=1700000000, nanoseconds=0)),
]  # fmt: skip

# -- PROTOCOL.md 10.2, Python-produced: (value, JSON body or None, msgpack hex) --
PYTHON_PRODUCED = [
    ({"A": 6, "B": 7}, b'{"A":6,"B":7}', "82a14106a14207"),
    (42, b"42", "2a"),
    ({"Quo": 3, "Rem": 1}, b'{"Quo":3,"Rem":1}', "82a351756f03a352656d01"),
    ({}, b"{}", "80"),
    (True, b"true", "c3"),
    (-15, b"-15", "f1"),
    (2**40, b"1099511627776", "cf0000010000000000"),
    (b"\x01\x02\x03", b'"AQID"', "c403010203"),  # JSON: bytes go as base64, as Go's []byte
    (datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), None, "d6ff65937d25"),
]

# -- PROTOCOL.md 10.2, negative vectors: what we emit (Go then misreads or rejects it) --
PYTHON_NEGATIVE_MSGPACK = [
    ({"a": 6, "b": 7}, "82a16106a16207"),
    ({"A": 3.0, "B": 4}, "82a141cb4008000000000000a14204"),
    (2**63, "cf8000000000000000"),
    ({1: "a"}, "8101a161"),
]


def _id(case: tuple[object, ...]) -> str:
    return str(case[0])


@pytest.mark.parametrize("case", GO_PRODUCED, ids=_id)
def test_go_json_body_decodes_to_vector(case):
    _, body, _, value, _ = case
    decoded = Json().unpack(body)
    assert decoded == value
    assert type(decoded) is type(value)  # Go's 3.0 arrives as `3`, an int


@pytest.mark.parametrize("case", GO_PRODUCED, ids=_id)
def test_go_msgpack_body_decodes_to_vector(case):
    _, _, hexbody, _, value = case
    decoded = MsgPack().unpack(bytes.fromhex(hexbody))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("case", GO_PRODUCED[:10], ids=_id)
def test_go_json_vectors_are_what_we_send_back(case):
    # For ASCII text and declaration-ordered keys our encoder is byte-identical to Go's.
    _, body, _, value, _ = case
    assert Json().pack(value) == body


@pytest.mark.parametrize(("value", "body", "_hex"), PYTHON_PRODUCED)
def test_python_json_encodes_to_vector(value, body, _hex):
    if body is None:
        with pytest.raises(EncodeError):  # a datetime is the caller's to format as RFC 3339
            Json().pack(value)
    else:
        assert Json().pack(value) == body


@pytest.mark.parametrize(("value", "_body", "hexbody"), PYTHON_PRODUCED)
def test_python_msgpack_encodes_to_vector(value, _body, hexbody):
    assert MsgPack().pack(value).hex() == hexbody


@pytest.mark.parametrize(("value", "hexbody"), PYTHON_NEGATIVE_MSGPACK)
def test_negative_msgpack_vectors_are_exactly_what_python_emits(value, hexbody):
    assert MsgPack().pack(value).hex() == hexbody
    assert MsgPack().unpack(bytes.fromhex(hexbody)) == value


def test_negative_json_float_vector():
    assert Json().pack({"A": 3.0, "B": 4}) == b'{"A":3.0,"B":4}'


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), [1, float("nan")]])
def test_json_refuses_nan_and_infinity(value):
    with pytest.raises(EncodeError):
        Json().pack(value)


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b'{"a":-Infinity}'])
def test_json_refuses_nan_and_infinity_on_the_way_in(body):
    with pytest.raises(ProtocolViolation, match="not valid JSON"):
        Json().unpack(body)


def test_encode_error_is_a_usage_error_and_an_rpc_error():
    with pytest.raises(amqprpc.RPCError) as info:
        Json().pack(float("nan"))
    assert isinstance(info.value, UsageError)


# -- section 8.1 details ------------------------------------------------------------------


def test_json_is_compact_raw_utf8_without_newline():
    assert Json().pack({"k": [1, 2], "s": "héllo"}) == '{"k":[1,2],"s":"héllo"}'.encode()


def test_json_sort_keys_matches_go_maps():
    assert Json(sort_keys=True).pack({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert Json().pack({"b": 1, "a": 2}) == b'{"b":1,"a":2}'


def test_json_empty_bytes_is_empty_string():
    assert Json().pack(b"") == b'""'
    assert Json().pack(bytearray(b"\x01\x02\x03")) == b'"AQID"'


def test_json_accepts_whitespace_and_escapes():
    assert Json().unpack(b' { "a" : "\\u00e9\\u003c" , "b" : [ ] } ') == {"a": "é<", "b": []}


@pytest.mark.parametrize("value", [{1, 2}, object(), datetime.date(2024, 1, 2)])
def test_json_unknown_types_raise_encode_error(value):
    with pytest.raises(EncodeError):
        Json().pack(value)


def test_json_circular_and_deep_values_raise_encode_error():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(EncodeError):
        Json().pack(loop)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(EncodeError):
        Json().pack(deep)


# -- section 8.2 details ------------------------------------------------------------------


@pytest.mark.parametrize(
    "hexbody",
    ["0c", "cc0c", "cd000c", "ce0000000c", "cf000000000000000c",
     "d00c", "d1000c", "d20000000c", "d3000000000000000c"],
)  # fmt: skip
def test_msgpack_accepts_every_integer_width(hexbody):
    assert MsgPack().unpack(bytes.fromhex(hexbody)) == 12


def test_msgpack_float32_decodes_to_double():
    assert MsgPack().unpack(bytes.fromhex("ca3fc00000")) == 1.5


def test_msgpack_96_bit_timestamp():
    body = bytes.fromhex("c70cff" + "00000006" + "0000000065937d25")
    assert MsgPack().unpack(body) == msgpack.Timestamp(seconds=1704164645, nanoseconds=6)


def test_msgpack_str_and_bin_stay_apart():
    assert MsgPack().pack("abc") == b"\xa3abc"
    assert MsgPack().pack(b"abc") == b"\xc4\x03abc"
    assert MsgPack().unpack(b"\xa3abc") == "abc"
    assert MsgPack().unpack(b"\xc4\x03abc") == b"abc"


def test_msgpack_long_strings_use_str8():
    assert MsgPack().pack("y" * 32)[:2] == b"\xd9\x20"
    assert MsgPack().pack("y" * 255)[:2] == b"\xd9\xff"
    assert MsgPack().pack("y" * 31)[:1] == b"\xbf"


@pytest.mark.parametrize(
    "value", [2**64, -(2**63) - 1, {1, 2}, object(), datetime.datetime(2024, 1, 2)]
)
def test_msgpack_unencodable_values_raise_encode_error(value):
    with pytest.raises(EncodeError):
        MsgPack().pack(value)


# -- undecodable bodies: always ProtocolViolation, never a bare ValueError ----------------

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_MSGPACK = b"\x91" * 100_000 + b"\xc0"

BAD_JSON = {
    "empty": b"",
    "garbage": b"garbage",
    "truncated": b'{"A":',
    "invalid-utf8": b'"\xff\xfe"',
    "nul": b"\x00",
    "deeply-nested": DEEP_JSON,
    "huge-int": b"1" * 5000,
}
BAD_MSGPACK = {
    "empty": b"",
    "never-used-code": b"\xc1",
    "truncated-int": b"\xd3\x00\x00",
    "trailing-bytes": bytes.fromhex("d3000000000000000cff"),
    "array-longer-than-body": b"\xdd\xff\xff\xff\xff",
    "unhashable-key": b"\x81\x90\x01",
    "bad-timestamp": b"\xd6\xff\x00",
    "invalid-utf8": b"\xa2\xff\xfe",
    "deeply-nested": DEEP_MSGPACK,
    "deeply-nested-maps": b"\x81\xc0" * 100_000 + b"\xc0",
}


@pytest.mark.parametrize("body", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_undecodable_json_is_protocol_violation(body):
    with pytest.raises(ProtocolViolation):
        Json().unpack(body)
    with pytest.raises(ProtocolViolation):
        unpack_body(Json(), body)


@pytest.mark.parametrize("body", BAD_MSGPACK.values(), ids=BAD_MSGPACK.keys())
def test_undecodable_msgpack_is_protocol_violation(body):
    with pytest.raises(ProtocolViolation) as info:
        MsgPack().unpack(body)
    assert str(info.value)  # a reason, even when msgpack's exception has no text
    with pytest.raises(ProtocolViolation):
        unpack_body(MsgPack(), body)


def test_protocol_violation_is_not_a_value_error():
    # Callers catch RPCError; a bare ValueError would be a different contract.
    with pytest.raises(ProtocolViolation) as info:
        Json().unpack(b"{")
    assert not isinstance(info.value, ValueError)
    assert isinstance(info.value, amqprpc.RPCError)


# -- user formatters ------------------------------------------------------------------------


class TextFormatter:
    """A user formatter whose pack returns str."""

    def pack(self, obj: object) -> str:
        return f"<{obj}>"

    def unpack(self, body: bytes) -> object:
        text = body.decode("utf-8")
        if not (text.startswith("<") and text.endswith(">")):
            raise ValueError("not a bracketed body")
        return text[1:-1]


class BrokenFormatter:
    def __init__(self, pack_result: object = b"", unpack_error: Exception | None = None):
        self.pack_result = pack_result
        self.unpack_error = unpack_error

    def pack(self, obj: object) -> object:
        if isinstance(self.pack_result, Exception):
            raise self.pack_result
        return self.pack_result

    def unpack(self, body: bytes) -> object:
        if self.unpack_error is not None:
            raise self.unpack_error
        return body


def test_user_formatter_str_pack_is_sent_as_utf8():
    assert pack_body(TextFormatter(), "é") == "<é>".encode()
    assert unpack_body(TextFormatter(), "<é>".encode()) == "é"


def test_user_formatter_unpack_value_error_is_protocol_violation():
    with pytest.raises(ProtocolViolation, match="not a bracketed body"):
        unpack_body(TextFormatter(), b"plain")
    with pytest.raises(ProtocolViolation):
        unpack_body(TextFormatter(), b"\xff")  # UnicodeDecodeError is a ValueError


@pytest.mark.parametrize("error", [ValueError("v"), TypeError("t"), KeyError("k")])
def test_user_formatter_unpack_failures_become_protocol_violation(error):
    with pytest.raises(ProtocolViolation):
        unpack_body(BrokenFormatter(unpack_error=error), b"x")


def test_user_formatter_protocol_violation_passes_through_unchanged():
    original = ProtocolViolation("mine")
    with pytest.raises(ProtocolViolation) as info:
        unpack_body(BrokenFormatter(unpack_error=original), b"x")
    assert info.value is original


@pytest.mark.parametrize(
    ("result", "expected"), [(bytearray(b"ab"), b"ab"), (memoryview(b"cd"), b"cd"), (b"", b"")]
)
def test_pack_body_accepts_bytes_likes(result, expected):
    body = pack_body(BrokenFormatter(pack_result=result), None)
    assert body == expected
    assert type(body) is bytes


@pytest.mark.parametrize(
    "result", [42, None, ["a"], ValueError("v"), TypeError("t"), OverflowError("o")]
)
def test_pack_body_failures_are_encode_errors(result):
    with pytest.raises(EncodeError):
        pack_body(BrokenFormatter(pack_result=result), None)


def test_pack_body_keeps_formatter_encode_error():
    with pytest.raises(EncodeError, match="JSON"):
        pack_body(Json(), float("nan"))


@pytest.mark.parametrize("formatter", [Json, MsgPack, TextFormatter])
def test_as_formatter_accepts_class(formatter):
    instance = as_formatter(formatter)
    assert isinstance(instance, formatter)


@pytest.mark.parametrize("formatter", [Json(), MsgPack(), TextFormatter()])
def test_as_formatter_accepts_instance_as_is(formatter):
    assert as_formatter(formatter) is formatter


@pytest.mark.parametrize("thing", [42, "json", object(), int])
def test_as_formatter_refuses_non_formatters(thing):
    with pytest.raises(UsageError):
        as_formatter(thing)


def test_builtin_formatters_satisfy_the_protocol():
    assert isinstance(Json(), Formatter)
    assert isinstance(MsgPack(), Formatter)
    assert isinstance(TextFormatter(), Formatter)
    assert repr(Json()) == "Json()"
    assert repr(MsgPack()) == "MsgPack()"
    assert Json.content_type is None  # Go peers send none; we label nothing by default
    assert MsgPack.content_type is None
