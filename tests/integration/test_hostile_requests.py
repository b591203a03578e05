"""Hostile requests against real servers (both server adapters), through a real RabbitMQ.

Requests nobody well-behaved sends, published raw onto a running server's queue: random
bodies, every property missing or garbled, header values of every field type RabbitMQ passes on
(PROTOCOL.md section 6), private and dunder method names, names at the 255-byte limit of a
shortstr. Every request that names our reply queue gets exactly one reply, with `message_id`
copied and string-only headers (sections 4-5); nothing private ever runs; the server keeps
serving (section 9). The content headers are written byte for byte (hostile_helpers.py).
"""

from __future__ import annotations

import datetime
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import amqprpc.sync
from tests.integration import hostile_helpers
from tests.integration.hostile_helpers import (
    BAD_KEY,
    DEEP,
    EVERY_TYPE,
    FUZZ,
    HUGE_TIMESTAMP,
    MAX_BODY,
    PAMQP_FLOAT,
    PAMQP_INTS,
    echoed,
    entry,
    pamqp_entry,
    pika_entry,
    raw,
    table,
)
from tests.integration.hostile_peers import SERVERS, Arith, ReplySink
from tests.integration.raw import reply_headers

# The `formatter` fixture (json, msgpack), shared with test_hostile_replies.py: bound
# here, not imported by name, so that no test's argument redefines an import.
formatter = hostile_helpers.formatter


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


@pytest.fixture
def sink(broker_url: str) -> Iterator[ReplySink]:
    peer = ReplySink(broker_url)
    yield peer
    peer.close()


def check_reply_envelope(props: Any, body: bytes, formatter: Any) -> None:
    """A reply every Go client reads safely: string headers only, a non-empty `error` text
    with the empty-struct body, or a body that decodes (PROTOCOL.md sections 4-6)."""
    headers = reply_headers(props)
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
        assert reply_headers(props) == {"error": text}, name  # net/rpc's text, no error_type
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
    assert not reply_headers(props) and formatter().unpack(body) == {"ok": True}
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
    # read such content headers itself: pika on HUGE_TIMESTAMP and DEEP, pamqp (aioamqp, aiormq)
    # on all three and on a non-UTF-8 property.
    tables = {
        "every-type": EVERY_TYPE,
        "huge-timestamp": table(HUGE_TIMESTAMP),
        "deep": table(DEEP),
        "bad-key": table(BAD_KEY),
        "all-at-once": table(HUGE_TIMESTAMP, DEEP, BAD_KEY, EVERY_TYPE[4:]),
        "pamqp-ints": PAMQP_INTS,
        "pamqp-float": PAMQP_FLOAT,
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
        assert not reply_headers(props)
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
