"""Arith input against real servers and clients, through a real RabbitMQ.

A. Requests nobody well-behaved sends, published raw onto a running server's queue (both
   server adapters): random bodies, every property missing or garbled, header values of every
   field type RabbitMQ passes on (PROTOCOL.md section 6), private and dunder method names,
   names at the 255-byte limit of a shortstr. Every request that names our reply queue gets
   exactly one reply, with `message_id` copied and string-only headers (sections 4-5); nothing
   private ever runs; the server keeps serving (section 9).
B. Replies nobody well-behaved sends, on a client's reply queue (all three client codecs): a
   fake server answers every request only after junk (unknown, duplicate, late and
   unparseable call numbers, odd headers, garbage bodies). Every caller gets its own result,
   every oddity is counted, and a reply with a non-str `error` or an undecodable body fails
   only its own call, with ProtocolViolation (section 9).

Content headers are written byte for byte (`RawProperties`), so that anything can be sent:
what pika refuses (non-UTF-8 short strings, timestamps beyond year 9999), the integer and float
field types only pamqp (aioamqp's encoder) produces, and tables nested deeper than Python's
recursion limit. Only what RabbitMQ itself refuses is left out: unknown field types, NaN and
infinite floats, invalid `expiration`, `user_id` or `delivery_mode`, and the `CC`/`BCC`
routing headers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aioamqp
import pamqp.encode
import pika
import pika.data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import amqprpc
import amqprpc.sync
from tests.integration.peers import AsyncServerThread, SyncServerThread
from tests.integration.raw import blocking

FORMATS = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}
MAX_BODY = 4096  # the servers' max_body_size, so that "too large" is cheap to send
FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

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


def pamqp_entry(key: str, value: object) -> bytes:
    # pamqp picks b/s/u/I/i/l for ints, f for floats, x for bytearray: types pika never sends.
    return pamqp.encode.field_table({key: value})[4:]


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


# -- the service under attack ----------------------------------------------------------------


class Arith:
    """Served as `Arith`. Whatever is not served records, in `reached`, being run."""

    def __init__(self, arg: object = None) -> None:
        reached = getattr(self, "reached", None)
        if reached is not None:  # a second call: only a request could make it
            reached.append("__init__")
        self.reached: list[str] = reached if reached is not None else []

    def echo(self, arg: Any) -> Any:
        return arg

    def mul(self, args: Any) -> Any:
        return args["A"] * args["B"]

    def fail(self, arg: Any) -> Any:
        raise ValueError("")  # an empty text still makes a non-empty error header

    def unencodable(self, arg: Any) -> Any:
        return {"x": object()}

    def _secret(self, arg: Any) -> str:
        self.reached.append("_secret")
        return "secret"

    def __call__(self, arg: Any) -> str:
        self.reached.append("__call__")
        return "called"

    @property
    def prop(self) -> Callable[[Any], Any]:
        self.reached.append("prop")
        return self.echo


SERVERS: dict[str, Any] = {"async-server": AsyncServerThread, "sync-server": SyncServerThread}


@pytest.fixture(params=list(FORMATS))
def formatter(request: pytest.FixtureRequest) -> Any:
    return FORMATS[request.param]


@pytest.fixture(params=list(SERVERS))
def served(
    request: pytest.FixtureRequest, broker_url: str, queue_name: str, formatter: Any
) -> Iterator[Arith]:
    service = Arith()
    peer = SERVERS[request.param](
        broker_url, queue_name, formatter, service, max_body_size=MAX_BODY
    ).start()
    yield service
    peer.stop()  # a sync server that stopped serving raises here


class ReplySink:
    """Two reply queues on one pika connection: a broker-named one, and one whose name is the
    full 255 bytes a shortstr holds. Collects what arrives on either."""

    def __init__(self, url: str) -> None:
        self.conn = blocking(url)
        self.channel = self.conn.channel()
        self.short = self.channel.queue_declare("", exclusive=True).method.queue
        name = f"amqprpc-test-hostile-{uuid.uuid4().hex}-"
        self.long = name + "x" * (255 - len(name))
        self.channel.queue_declare(self.long, exclusive=True)
        self.received: list[tuple[str, Any, bytes]] = []
        for queue in (self.short, self.long):
            self.channel.basic_consume(queue, functools.partial(self._got, queue), auto_ack=True)

    def _got(self, queue: str, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.received.append((queue, props, body))

    def publish(self, queue: str, body: bytes, properties: Any) -> None:
        self.channel.basic_publish("", queue, body, properties)

    def collect(self, count: int, timeout: float = 20.0) -> list[tuple[str, Any, bytes]]:
        """Everything received, once at least `count` replies arrived (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=max(0.0, deadline - time.monotonic()))
        got, self.received = self.received, []
        return got

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def sink(broker_url: str) -> Iterator[ReplySink]:
    peer = ReplySink(broker_url)
    yield peer
    peer.close()


def check_reply_envelope(props: Any, body: bytes, formatter: Any) -> None:
    """A reply every Go client reads safely: string headers only, a non-empty `error` text
    with the empty-struct body, or a body that decodes (PROTOCOL.md sections 4-6)."""
    headers = props.headers or {}
    assert set(headers) <= {"error", "error_type"}, headers
    assert all(isinstance(value, str) and value for value in headers.values()), headers
    if "error" in headers:
        assert body == formatter().pack({})
    else:
        formatter().unpack(body)


def normal_call_works(broker_url: str, queue: str, formatter: Any) -> None:
    with amqprpc.sync.client_codec(broker_url, queue, formatter, timeout=10) as codec:
        assert codec.client("Arith").Mul({"A": 6, "B": 7}) == 42
        assert codec.call("Arith.Echo", {"still": "serving"}) == {"still": "serving"}


# -- A. hostile requests ---------------------------------------------------------------------

BAD_NAMES = [  # (reply_to, the error text a server must answer with)
    ("Arith._secret", "rpc: can't find method Arith._secret"),
    ("Arith.Secret", "rpc: can't find method Arith.Secret"),
    ("Arith.__class__", "rpc: can't find method Arith.__class__"),
    ("Arith.__init__", "rpc: can't find method Arith.__init__"),
    ("Arith.__call__", "rpc: can't find method Arith.__call__"),
    ("Arith.prop", "rpc: can't find method Arith.prop"),
    ("Arith.mul.__globals__", "rpc: can't find service Arith.mul.__globals__"),
    ("Arith.echo.__func__", "rpc: can't find service Arith.echo.__func__"),
    ("Arith.reached.append", "rpc: can't find service Arith.reached.append"),
    ("__init__", "rpc: service/method request ill-formed: __init__"),
    ("", "rpc: service/method request ill-formed: "),
    (None, "rpc: service/method request ill-formed: "),
    (".", "rpc: can't find service ."),
    ("Arith.", "rpc: can't find method Arith."),
    ("arith.Echo", "rpc: can't find service arith.Echo"),
    ("Arith.Echo\x00", "rpc: can't find method Arith.Echo\x00"),
    ("N" * 255, "rpc: service/method request ill-formed: " + "N" * 255),
    ("Arith." + "M" * 249, "rpc: can't find method Arith." + "M" * 249),
    ("Arith." + "é" * 124 + "x", "rpc: can't find method Arith." + "é" * 124 + "x"),
]


def test_names_nobody_serves_are_refused_and_never_run(
    served: Arith, sink: ReplySink, broker_url: str, queue_name: str, formatter: Any
) -> None:
    assert sum(len(name.encode()) == 255 for name, _ in BAD_NAMES if name) == 3
    for i, (name, _) in enumerate(BAD_NAMES):
        queue = sink.long if i % 2 else sink.short  # replies to a 255-byte queue name too
        props = raw(correlation_id=queue, reply_to=name, message_id=str(i))
        sink.publish(queue_name, formatter().pack("pwned"), props)
    replies = sink.collect(len(BAD_NAMES))
    assert sorted(int(props.message_id) for _, props, _ in replies) == list(range(len(BAD_NAMES)))
    for queue, props, body in replies:
        i = int(props.message_id)
        name, text = BAD_NAMES[i]
        assert queue == (sink.long if i % 2 else sink.short)
        assert props.headers == {"error": text}, name  # net/rpc's text, no error_type
        assert (props.reply_to or None) == (name or None)  # copied ("" may come back absent)
        check_reply_envelope(props, body, formatter)
    assert served.reached == []
    normal_call_works(broker_url, queue_name, formatter)
    assert served.reached == []


def test_bad_bodies_and_odd_message_ids_get_exactly_one_reply(
    served: Arith, sink: ReplySink, broker_url: str, queue_name: str, formatter: Any
) -> None:
    cases: list[tuple[str, bytes, str | bytes | None, Callable[[str], bool]]] = [
        ("Arith.Echo", b"\xc1\xff\x00garbage", "1", lambda t: "undecodable" in t),
        ("Arith.Echo", b"", "2", lambda t: "undecodable" in t),
        ("Arith.Echo", b"\x00" * (MAX_BODY + 1), "abc", lambda t: "exceeds the limit" in t),
        ("Arith.Mul", formatter().pack("six"), "0", lambda t: "string indices" in t),
        ("Arith.Mul", formatter().pack([1, 2]), "x" * 255, lambda t: "list indices" in t),
        ("Arith.Mul", formatter().pack({"A": "a", "B": "b"}), "é" * 127, lambda t: "str" in t),
        ("Arith.Fail", formatter().pack(None), b"\xff\xfe", lambda t: t == "ValueError"),
        ("Arith.Unencodable", formatter().pack(1), "-1", lambda t: "cannot encode" in t),
        ("Arith.Echo", b"\xc1", "", lambda t: "undecodable" in t),
    ]
    for method, body, message_id, _ in cases:
        props = raw(correlation_id=sink.short, reply_to=method, message_id=message_id)
        sink.publish(queue_name, body, props)
    ok = raw(correlation_id=sink.short, reply_to="Arith.Echo", message_id="\x00 \U0001f600")
    sink.publish(queue_name, formatter().pack({"ok": True}), ok)
    # pamqp (the async server's encoder) cannot send an empty shortstr: "" comes back absent.
    got = sink.collect(len(cases) + 1)
    replies = {props.message_id or None: (props, body) for _, props, body in got}
    assert len(got) == len(replies) == len(cases) + 1
    props, body = replies.pop("\x00 \U0001f600")
    assert not props.headers and formatter().unpack(body) == {"ok": True}
    assert set(replies) == {echoed(message_id) or None for _, _, message_id, _ in cases}
    for method, _, message_id, check in cases:
        props, body = replies[echoed(message_id) or None]
        check_reply_envelope(props, body, formatter)
        assert check(props.headers["error"]), (method, props.headers)
    normal_call_works(broker_url, queue_name, formatter)


def test_header_values_of_every_type_are_ignored(
    served: Arith, sink: ReplySink, broker_url: str, queue_name: str, formatter: Any
) -> None:
    # Each of these killed a client library's connection (and so the server) before amqprpc
    # read such content headers itself: pika on HUGE_TIMESTAMP and DEEP, aioamqp on all three
    # and on a non-UTF-8 property.
    tables = {
        "every-type": EVERY_TYPE,
        "huge-timestamp": table(HUGE_TIMESTAMP),
        "deep": table(DEEP),
        "bad-key": table(BAD_KEY),
        "all-at-once": table(HUGE_TIMESTAMP, DEEP, BAD_KEY, EVERY_TYPE[4:]),
        "pamqp-ints": table(*(pamqp_entry(str(n), n) for n in (-1, 300, 40000, 2**31, -(2**40)))),
        "pamqp-float": table(pamqp_entry("f", 1.5), pamqp_entry("x", bytearray(b"\xff"))),
        "pika-types": table(
            pika_entry("x", b"\xff"),
            pika_entry("D", Decimal("-1.25")),
            pika_entry("T", datetime.datetime(9999, 12, 31)),
            pika_entry("error", 1),  # request headers are never read, whatever they hold
        ),
    }
    for name, headers in tables.items():
        hostile = name == "all-at-once"  # with properties pamqp cannot decode, too
        props = raw(
            correlation_id=sink.short,
            reply_to="Arith.Echo",
            message_id=name,
            headers=headers,
            timestamp=2**64 - 1 if hostile else 2**32,
            type=b"\xff" if hostile else "t",
            cluster_id="not empty",
            delivery_mode=2,
            priority=255,
        )
        sink.publish(queue_name, formatter().pack(name), props)
    replies = sink.collect(len(tables))
    assert sorted(props.message_id for _, props, _ in replies) == sorted(tables)
    for _, props, body in replies:
        assert not props.headers
        assert formatter().unpack(body) == props.message_id
    normal_call_works(broker_url, queue_name, formatter)


# Strategies for one hostile request. `route` says where its correlation_id points: only
# "short" and "long" are our reply queues; the rest must be answered nowhere we can see.
ROUTES = ["short", "long", "absent", "empty", "nowhere", "not-utf8"]
KNOWN_NAMES = [name for name, _ in BAD_NAMES] + [
    "Arith.Echo",
    "Arith.echo",
    "Arith.Mul",
    "Arith.Fail",
    "Arith.Unencodable",
]


utf8 = st.characters(codec="utf-8")  # any code point but a surrogate
utf8_text = (
    st.text(utf8, max_size=63)  # at most 4 bytes each: always fits a shortstr
    | st.text(st.characters(codec="ascii"), min_size=200, max_size=255)
)
shortstrs = utf8_text | st.binary(max_size=255)
message_ids = (
    st.integers(0, 2**64 + 10).map(str)
    | utf8_text.filter(bool)
    | st.binary(min_size=1, max_size=255)
    | st.sampled_from(["abc", "-1", "1.0", " 1", "\u0661", "0x1", "1" * 255])
)
header_keys = st.text(utf8, max_size=20).filter(
    lambda k: k not in ("CC", "BCC")  # RabbitMQ routes by these: not ours to fuzz
)
scalars = st.none() | st.booleans() | st.text(max_size=20)
pika_values = st.recursive(
    scalars | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(header_keys, inner, max_size=3),
    max_leaves=8,
)
pamqp_values = st.recursive(
    scalars
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(width=32, allow_nan=False, allow_infinity=False)  # RabbitMQ: 541 else
    | st.binary(max_size=20).map(bytearray),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(header_keys, inner, max_size=3),
    max_leaves=8,
)
header_entries = st.one_of(
    st.builds(pika_entry, header_keys, pika_values),
    st.builds(pamqp_entry, header_keys, pamqp_values),
    st.sampled_from([HUGE_TIMESTAMP, DEEP, BAD_KEY, entry("error", b"I", b"\x00" * 4)]),
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@dataclass(frozen=True)
class Request:
    route: str
    message_id: str | bytes | None
    properties: dict[str, Any]
    body: bytes


@st.composite
def requests(draw: st.DrawFn, formatter: Any) -> Request:
    props: dict[str, Any] = {
        name: draw(st.none() | shortstrs)
        for name in ("content_type", "content_encoding", "type", "app_id", "cluster_id")
    }
    props["reply_to"] = draw(st.none() | st.sampled_from(KNOWN_NAMES) | shortstrs)
    props["message_id"] = draw(st.none() | message_ids)
    props["delivery_mode"] = draw(st.none() | st.sampled_from([1, 2]))  # RabbitMQ: 406 else
    props["priority"] = draw(st.none() | st.integers(0, 255))
    props["timestamp"] = draw(st.none() | st.integers(0, 2**64 - 1))
    props["expiration"] = draw(st.none() | st.integers(60_000, 86_400_000).map(str))
    props["user_id"] = draw(st.none() | st.just("guest"))  # RabbitMQ refuses any other
    entries = draw(st.none() | st.lists(header_entries, max_size=4))
    props["headers"] = None if entries is None else table(*entries)
    body = draw(
        st.binary(max_size=64)
        | values.map(formatter().pack)
        | st.integers(MAX_BODY + 1, 2 * MAX_BODY).map(lambda n: b"\x91" * n)
    )
    return Request(draw(st.sampled_from(ROUTES)), props["message_id"], props, body)


def test_fuzzed_requests(
    served: Arith, sink: ReplySink, broker_url: str, queue_name: str, formatter: Any
) -> None:
    correlation = {
        "short": sink.short,
        "long": sink.long,
        "absent": None,
        "empty": "",
        "nowhere": f"amqprpc-test-nowhere-{uuid.uuid4().hex}",
        "not-utf8": b"\xffamqprpc-test-nowhere",
    }

    @FUZZ
    @given(batch=st.lists(requests(formatter), min_size=1, max_size=20))
    def run(batch: list[Request]) -> None:
        expected: Counter[tuple[str, str | None]] = Counter()
        for request in batch:
            reply_queue = correlation[request.route]
            props = raw(correlation_id=reply_queue, **request.properties)
            sink.publish(queue_name, request.body, props)
            if request.route in ("short", "long"):
                assert isinstance(reply_queue, str)
                expected[(reply_queue, echoed(request.message_id))] += 1
        # A well-formed request last: the server still answers, and its reply is counted too.
        sink.publish(
            queue_name,
            formatter().pack("canary"),
            raw(correlation_id=sink.short, reply_to="Arith.Echo", message_id="canary"),
        )
        expected[(sink.short, "canary")] += 1
        replies = sink.collect(sum(expected.values()))
        assert Counter((queue, props.message_id) for queue, props, _ in replies) == expected
        for _, props, body in replies:
            check_reply_envelope(props, body, formatter)
            if props.message_id == "canary":
                assert formatter().unpack(body) == "canary"
        assert served.reached == []

    run()
    # Nothing arrives late or twice: a last round trip, then the queues hold nothing else.
    sink.publish(
        queue_name,
        formatter().pack(1),
        raw(correlation_id=sink.short, reply_to="Arith.Echo", message_id="last"),
    )
    assert [props.message_id for _, props, _ in sink.collect(1)] == ["last"]
    normal_call_works(broker_url, queue_name, formatter)
    assert served.reached == []


# -- B. hostile replies ----------------------------------------------------------------------

BAD_ERRORS = {  # `error` headers that are not a str: each fails its own call, and only that one
    "int": pika_entry("error", 7),
    "bytes": pika_entry("error", b"boom"),
    "void": pika_entry("error", None),
    "bool": pika_entry("error", True),
    "list": pika_entry("error", ["boom"]),
    "table": pika_entry("error", {"text": "boom"}),
    "timestamp": pika_entry("error", datetime.datetime(2024, 1, 2)),
    "decimal": pika_entry("error", Decimal("1.5")),
    "u": pamqp_entry("error", 40000),
    "float": pamqp_entry("error", 1.5),
    "not-utf8": entry("error", b"S", longstr(b"\xff boom")),
    "huge-timestamp": entry("error", b"T", struct.pack(">Q", 2**64 - 1)),
    "deep": entry("error", b"A", nested_array(3000)),
}
REPLY_VARIANTS = ["ok", "bare", "garbage", "error", "empty-error", *BAD_ERRORS]
MALFORMED_IDS: dict[str, str | bytes | None] = {  # message_ids that name no call at all
    "absent": None,
    "empty": "",
    "word": "abc",
    "negative": "-1",
    "float": "1.0",
    "space": " 1",
    "arabic-digit": "\u0661",
    "hex": "0x1",
    "overflow": str(2**64),
    "long": "9" * 255,
    "not-utf8": b"\xff1",
}
UNKNOWN_BASE = 10**15  # call numbers no codec here ever issues


class FakeServer:
    """A raw pika consumer on the request queue that answers each request after junk.

    A request's argument says what to send first: `junk`, a list of [kind, n, variant] with
    kind "unknown" (an id never issued), "malformed" (MALFORMED_IDS[n]) or "duplicate" (the
    last call it answered on time); `variant` picks headers and body. The method says how to
    answer: Echo/EmptyError return `value`, BadError/Garbage/Remote break the contract, Late
    is answered only before the next request's junk. `sent` counts the junk actually sent.
    """

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self.url, self.queue, self.formatter = url, queue, formatter()
        self.sent: Counter[str] = Counter()
        self.answered: list[tuple[str, str]] = []  # (reply queue, message_id), on time
        self.late: list[tuple[str, str, str]] = []
        self.failure: BaseException | None = None
        self._ready = threading.Event()
        self._conn: Any = None
        self._channel: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(15), "fake server did not start"
        return self

    def _run(self) -> None:
        try:
            self._conn = blocking(self.url)
            self._channel = self._conn.channel()
            self._channel.queue_declare(self.queue)  # Go's flags: pika's defaults
            self._channel.basic_consume(self.queue, self._on_request, auto_ack=True)
            self._ready.set()
            self._channel.start_consuming()
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            self._ready.set()
            if self._conn is not None and self._conn.is_open:
                self._conn.close()

    def stop(self) -> None:
        if self._conn is not None and self._conn.is_open:
            self._conn.add_callback_threadsafe(self._channel.stop_consuming)
        self._thread.join(15)
        assert self.failure is None, self.failure

    def _reply(self, queue: str, method: str, message_id: Any, variant: str, value: Any) -> None:
        headers, body = None, self.formatter.pack(value)
        if variant == "garbage":
            body = b"\xc1\xff"  # neither JSON nor msgpack (0xc1 is never used)
        elif variant in ("error", "empty-error"):
            headers = table(pika_entry("error", "junk" if variant == "error" else ""))
        elif variant == "remote":
            headers = table(pika_entry("error", "boom"), pika_entry("error_type", 5))
        elif variant in BAD_ERRORS:
            headers, body = table(BAD_ERRORS[variant]), self.formatter.pack({})
        if variant == "bare":  # no property but message_id (with "absent": none at all)
            props = raw(message_id=message_id)
        else:
            props = raw(
                correlation_id=queue, reply_to=method, message_id=message_id, headers=headers
            )
        self._channel.basic_publish("", queue, body, props)

    def _on_request(self, channel: Any, deliver: Any, props: Any, body: bytes) -> None:
        arg = self.formatter.unpack(body)
        queue, method, call = props.correlation_id, props.reply_to, props.message_id
        for late_queue, late_method, late_call in self.late:
            self._reply(late_queue, late_method, late_call, "ok", "too late")
            self.sent["late"] += 1
        self.late.clear()
        for kind, n, variant in arg.get("junk", []):
            if kind == "unknown":
                self._reply(queue, method, str(UNKNOWN_BASE + n), variant, "unknown")
            elif kind == "malformed":
                self._reply(queue, method, MALFORMED_IDS[n], variant, "malformed")
            else:
                done = [c for q, c in self.answered if q == queue]
                if not done:
                    continue  # nothing answered yet: nothing to duplicate
                self._reply(queue, method, done[-1], variant, "duplicate")
            self.sent[kind] += 1
        name = method.rpartition(".")[2]
        if name == "Late":
            self.late.append((queue, method, call))
            return
        variant = {"Echo": "ok", "EmptyError": "empty-error", "Garbage": "garbage"}.get(name)
        if name == "BadError":
            variant = arg["variant"]
        self._reply(queue, method, call, variant or "remote", arg.get("value"))
        self.answered.append((queue, call))


class AsyncClient:
    """An async client codec on its own event loop, called from the test's thread."""

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(url, queue, formatter),), daemon=True
        )
        self._thread.start()
        assert self._ready.wait(15), "async client did not start"
        self.codec: Any = getattr(self, "codec", None)
        assert self.codec is not None, "async client could not connect"

    async def _main(self, url: str, queue: str, formatter: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            transport, protocol = await aioamqp.from_url(url)
            try:
                self.codec = await amqprpc.client_codec(protocol, queue, formatter, timeout=10)
                self._ready.set()
                await self._stop.wait()
                await self.codec.close()
            finally:
                await protocol.close()
                transport.close()
        finally:
            self._ready.set()

    def calls(self, calls: list[tuple[str, Any]], timeout: float) -> list[Any]:
        async def gather() -> list[Any]:
            return await asyncio.gather(
                *(self.codec.call(m, a, timeout=timeout) for m, a in calls), return_exceptions=True
            )

        return asyncio.run_coroutine_threadsafe(gather(), self._loop).result(60)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


class CallerClient:
    """A sync client codec on the test's own BlockingConnection: one call at a time."""

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self.connection = blocking(url)
        self.codec: Any = amqprpc.sync.client_codec(self.connection, queue, formatter, timeout=10)

    def calls(self, calls: list[tuple[str, Any]], timeout: float) -> list[Any]:
        outcomes: list[Any] = []
        for method, arg in calls:
            try:
                outcomes.append(self.codec.call(method, arg, timeout=timeout))
            except amqprpc.RPCError as exc:
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        self.codec.close()
        if self.connection.is_open:
            self.connection.close()


class ThreadSafeClient:
    """A thread-safe sync client codec: all calls in flight at once, as futures."""

    def __init__(self, url: str, queue: str, formatter: Any) -> None:
        self.codec: Any = amqprpc.sync.client_codec(url, queue, formatter, timeout=10)

    def calls(self, calls: list[tuple[str, Any]], timeout: float) -> list[Any]:
        futures = [self.codec.call_async(m, a, timeout=timeout) for m, a in calls]
        concurrent.futures.wait(futures, 60)
        return [f.exception(timeout=0) or f.result() for f in futures]

    def close(self) -> None:
        self.codec.close()


CLIENTS: dict[str, Any] = {
    "async-client": AsyncClient,
    "caller-client": CallerClient,
    "thread-safe-client": ThreadSafeClient,
}


@pytest.fixture
def fake(broker_url: str, queue_name: str, formatter: Any) -> Iterator[FakeServer]:
    server = FakeServer(broker_url, queue_name, formatter).start()
    yield server
    server.stop()


@pytest.fixture(params=list(CLIENTS))
def client(
    request: pytest.FixtureRequest, fake: FakeServer, broker_url: str, queue_name: str,
    formatter: Any,
) -> Iterator[Any]:  # fmt: skip
    peer = CLIENTS[request.param](broker_url, queue_name, formatter)
    yield peer
    peer.close()


def check_outcome(method: str, arg: dict[str, Any], outcome: Any) -> None:
    name = method.rpartition(".")[2]
    if name in ("Echo", "EmptyError"):  # an empty error text is success, as for Go clients
        assert outcome == arg["value"], (method, arg, outcome)
    elif name == "BadError":
        assert isinstance(outcome, amqprpc.ProtocolViolation), (arg, outcome)
        assert "error header is" in str(outcome)
    elif name == "Garbage":
        assert isinstance(outcome, amqprpc.ProtocolViolation), outcome
        assert "undecodable" in str(outcome)
    else:
        assert isinstance(outcome, amqprpc.RemoteError), outcome
        assert (str(outcome), outcome.remote_type) == ("boom", None)  # a non-str type: dropped


def test_bad_replies_fail_only_their_own_call(client: Any, fake: FakeServer) -> None:
    calls: list[tuple[str, Any]] = []
    for i, variant in enumerate(BAD_ERRORS):
        calls.append(("Fake.BadError", {"variant": variant}))
        calls.append(("Fake.Echo", {"value": [i, variant]}))
    calls += [
        ("Fake.Garbage", {}),
        ("Fake.Echo", {"value": "after garbage"}),
        ("Fake.Remote", {}),
        ("Fake.EmptyError", {"value": {"empty": "error"}}),
    ]
    outcomes = client.calls(calls, timeout=10)
    for (method, arg), outcome in zip(calls, outcomes, strict=True):
        check_outcome(method, arg, outcome)
    assert client.calls([("Fake.Echo", {"value": 42})], timeout=10) == [42]
    stats = client.codec.stats
    assert (stats.unknown, stats.duplicate, stats.late, client.codec.malformed) == (0, 0, 0, 0)


def junk_plan(kind: str, n: int, variant: str) -> list[Any]:
    if kind == "malformed":
        return [kind, list(MALFORMED_IDS)[n % len(MALFORMED_IDS)], variant]
    return [kind, n, variant]


junk = st.builds(
    junk_plan,
    st.sampled_from(["unknown", "malformed", "duplicate"]),
    st.integers(0, 1000),
    st.sampled_from(REPLY_VARIANTS),
)
call_plans = st.tuples(
    st.sampled_from(["Echo", "Echo", "EmptyError", "BadError", "Garbage", "Remote"]),
    st.lists(junk, max_size=4),
    st.text(max_size=8) | st.integers(-(2**31), 2**31),
    st.sampled_from(list(BAD_ERRORS)),
)


def test_fuzzed_junk_before_every_reply(client: Any, fake: FakeServer) -> None:
    # A call the fake server answers only after its deadline: the answer comes back late.
    [timed_out] = client.calls([("Fake.Late", {})], timeout=0.5)
    assert isinstance(timed_out, amqprpc.RPCTimeout)

    @FUZZ
    @given(plans=st.lists(call_plans, min_size=1, max_size=8))
    def run(plans: list[tuple[str, list[Any], Any, str]]) -> None:
        calls = [
            (f"Fake.{name}", {"value": [i, value], "junk": before, "variant": variant})
            for i, (name, before, value, variant) in enumerate(plans)
        ]
        for (method, arg), outcome in zip(calls, client.calls(calls, 10), strict=True):
            check_outcome(method, arg, outcome)

    run()
    # One of each, whatever hypothesis chose: then every counter has something to count.
    every = [
        ["unknown", 1, "ok"],
        ["malformed", "absent", "bare"],
        ["malformed", "not-utf8", "deep"],
        ["duplicate", 0, "error"],
    ]
    assert client.calls([("Fake.Echo", {"value": 1, "junk": every})], 10) == [1]
    stats = client.codec.stats
    counted = {
        "unknown": stats.unknown,
        "duplicate": stats.duplicate,
        "late": stats.late,
        "malformed": client.codec.malformed,
    }
    assert counted == dict(fake.sent), (counted, fake.sent)
    assert min(counted.values()) >= 1 and counted["late"] == 1
    assert client.calls([("Fake.Echo", {"value": "still fine"})], 10) == ["still fine"]
