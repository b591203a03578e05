"""Property-based tests: round trips, a stateful model of the pending table, and the rule
that every handler exception becomes an error reply."""

from __future__ import annotations

import collections

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from amqprpc import ConnectionLost, Json, MsgPack, Registry, RemoteError, RPCTimeout
from amqprpc._envelope import (
    ERROR_HEADER,
    ERROR_TYPE_HEADER,
    MAX_ERROR_TEXT,
    Request,
    error_reply_properties,
    parse_reply,
    parse_request,
    reply_properties,
    request_properties,
)
from amqprpc._frames import decode_content_header, encode_content_header
from amqprpc.protocol import (
    IGNORED,
    CallDone,
    CallState,
    Handler,
    NotFound,
    PendingTable,
    Properties,
    Publish,
)

from .helpers import REPLY_QUEUE, REQUEST_QUEUE, LoopbackPair, wire

SETTINGS = settings(max_examples=100, deadline=None)
STATEFUL = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)

msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
msgpack_keys = st.text() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.binary()
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(msgpack_keys, inner, max_size=5),
    max_leaves=20,
)

# Short strings: at most 63 characters is at most 252 UTF-8 bytes.
shortstrs = st.text(max_size=63)
names = st.text(min_size=1, max_size=63)  # st.text() has no surrogates
# Error texts, surrogates included (an OSError about an undecodable path carries them).
# (st.text() drops surrogates even from an explicit alphabet, so join characters instead.)
any_chars = st.characters() | st.characters(categories=["Cs"])
error_texts = st.lists(any_chars, max_size=40).map("".join) | st.builds(
    str.__mul__, st.characters(), st.integers(MAX_ERROR_TEXT - 5, MAX_ERROR_TEXT + 50)
)  # long texts around the truncation limit, cheaply

properties_strategy = st.builds(
    Properties,
    content_type=st.none() | shortstrs,
    content_encoding=st.none() | shortstrs,
    headers=st.none() | st.dictionaries(shortstrs, st.text(max_size=100), max_size=4),
    delivery_mode=st.none() | st.integers(0, 255),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none() | shortstrs,
    reply_to=st.none() | shortstrs,
    expiration=st.none() | shortstrs,
    message_id=st.none() | shortstrs,
    timestamp=st.none() | st.integers(0, 2**64 - 1),
    type=st.none() | shortstrs,
    user_id=st.none() | shortstrs,
    app_id=st.none() | shortstrs,
    cluster_id=st.none() | shortstrs,
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


# -- the pending table, as a state machine ------------------------------------------------


class PendingMachine(RuleBasedStateMachine):
    """A model of PendingTable: outstanding id -> deadline, plus how each id ended."""

    def __init__(self) -> None:
        super().__init__()
        self.table: PendingTable[int] = PendingTable()
        self.now = 0.0
        self.outstanding: dict[int, float] = {}
        self.final: dict[int, CallState] = {}
        self.ends: collections.Counter[int] = collections.Counter()
        self.issued = 0
        self.expected_stats = collections.Counter[str]()

    def _ended(self, entry: object, state: CallState) -> None:
        assert entry is not IGNORED
        call_id = entry.call_id  # type: ignore[attr-defined]
        assert entry.state is state  # type: ignore[attr-defined]
        assert entry.token == call_id  # type: ignore[attr-defined]
        assert call_id in self.outstanding
        del self.outstanding[call_id]
        self.final[call_id] = state
        self.ends[call_id] += 1

    def _stray(self, call_id: int) -> None:
        final = self.final.get(call_id)
        if final is CallState.DONE:
            self.expected_stats["duplicate"] += 1
        elif final is not None:
            self.expected_stats["late"] += 1
        else:
            self.expected_stats["unknown"] += 1

    @rule(timeout=st.floats(min_value=0.001, max_value=100.0))
    def start(self, timeout):
        deadline = self.now + timeout
        entry = self.table.add(now=self.now, deadline=deadline, label="m", token=self.issued)
        assert entry.call_id == self.issued
        assert entry.state is CallState.PENDING
        self.outstanding[entry.call_id] = deadline
        self.issued += 1

    @rule(data=st.data())
    def resolve(self, data):
        call_id = data.draw(st.integers(min_value=0, max_value=self.issued + 2))
        result = self.table.resolve(call_id)
        if call_id in self.outstanding:
            self._ended(result, CallState.DONE)
        else:
            assert result is IGNORED  # late, duplicate or unknown: never raised
            self._stray(call_id)

    @rule(data=st.data())
    def cancel(self, data):
        call_id = data.draw(st.integers(min_value=0, max_value=self.issued + 2))
        result = self.table.cancel(call_id)
        if call_id in self.outstanding:
            self._ended(result, CallState.CANCELLED)
        else:
            assert result is IGNORED

    @rule(step=st.floats(min_value=0.0, max_value=50.0))
    def expire(self, step):
        self.now += step
        due = sorted((d, i) for i, d in self.outstanding.items() if d <= self.now)
        expired = self.table.expire(self.now)
        assert [(e.deadline, e.call_id) for e in expired] == due
        for entry in expired:
            self._ended(entry, CallState.TIMED_OUT)

    @precondition(lambda self: self.issued > 0)
    @rule()
    def fail_all(self):
        lost = self.table.fail_all()
        assert sorted(e.call_id for e in lost) == sorted(self.outstanding)
        for entry in lost:
            self._ended(entry, CallState.LOST)

    @invariant()
    def matches_model(self):
        assert len(self.table) == len(self.outstanding)
        assert {e.call_id for e in self.table} == set(self.outstanding)
        for call_id in range(self.issued):
            expected = CallState.PENDING if call_id in self.outstanding else self.final[call_id]
            assert self.table.state(call_id) is expected

    @invariant()
    def next_deadline_is_min_outstanding(self):
        expected = min(self.outstanding.values()) if self.outstanding else None
        assert self.table.next_deadline() == expected

    @invariant()
    def every_id_ends_at_most_once(self):
        assert all(count == 1 for count in self.ends.values())
        assert set(self.ends) == set(self.final)
        assert set(self.final).isdisjoint(self.outstanding)

    @invariant()
    def strays_are_counted(self):
        stats = self.table.stats
        assert stats.unknown == self.expected_stats["unknown"]
        assert stats.duplicate == self.expected_stats["duplicate"]
        assert stats.late == self.expected_stats["late"]
        assert sum(stats.by_state.values()) == len(self.final)

    def teardown(self):
        # Whatever happened, ending everything leaves nothing behind, each id ended once.
        self.fail_all()
        assert len(self.table) == 0
        assert self.table.next_deadline() is None
        assert set(self.final) == set(range(self.issued))
        assert all(count == 1 for count in self.ends.values())


PendingMachine.TestCase.settings = STATEFUL
TestPendingMachine = PendingMachine.TestCase


class ClientMachine(RuleBasedStateMachine):
    """The client core over a loopback server: every call gets exactly one CallDone."""

    @initialize(formatter=st.sampled_from([Json(), MsgPack()]))
    def setup(self, formatter):
        registry = Registry()
        registry.register(lambda arg: arg, name="Svc.Echo")
        self.pair = LoopbackPair(registry, formatter=formatter, now=0.0)
        self.replies: dict[int, Publish] = {}  # call id -> the server's reply, kept to resend
        self.deadlines: dict[int, float] = {}  # the model: pending call id -> deadline
        self.ends: collections.Counter[int] = collections.Counter()

    def _end(self, call_id: int) -> None:
        del self.deadlines[call_id]
        self.ends[call_id] += 1

    @rule(arg=st.integers(-1000, 1000), timeout=st.floats(0.01, 10.0))
    def start(self, arg, timeout):
        started = self.pair.start("Svc.Echo", arg, timeout=timeout)
        assert started.call_id == len(self.replies)
        self.deadlines[started.call_id] = started.deadline
        self.replies[started.call_id] = self.pair.serve(started.publish).reply

    @precondition(lambda self: bool(self.replies))
    @rule(data=st.data())
    def receive(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.replies)))
        done = self.pair.reply_to_client(self.replies[call_id])
        if call_id in self.deadlines:
            assert isinstance(done, CallDone)
            assert done.call_id == call_id
            assert done.error is None
            self._end(call_id)
        else:
            assert done is IGNORED  # late or duplicate: never raised

    @precondition(lambda self: bool(self.replies))
    @rule(data=st.data())
    def cancel(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.replies)))
        pending = call_id in self.deadlines
        assert self.pair.client.cancel(call_id) is pending
        if pending:
            self._end(call_id)

    @rule(step=st.floats(0.0, 5.0))
    def expire(self, step):
        self.pair.now += step
        due = {i for i, d in self.deadlines.items() if d <= self.pair.now}
        expired = self.pair.client.expire(self.pair.now)
        assert {d.call_id for d in expired} == due
        for done in expired:
            assert isinstance(done.error, RPCTimeout)
            self._end(done.call_id)

    @rule()
    def fail_all(self):
        lost = self.pair.client.fail_all("gone")
        assert {d.call_id for d in lost} == set(self.deadlines)
        for done in lost:
            assert isinstance(done.error, ConnectionLost)
            self._end(done.call_id)

    @invariant()
    def each_call_ends_once_and_deadline_is_min(self):
        if not hasattr(self, "pair"):
            return
        assert all(count == 1 for count in self.ends.values())
        expected = min(self.deadlines.values()) if self.deadlines else None
        assert self.pair.client.next_deadline() == expected
        assert len(self.pair.client.pending) == len(self.deadlines)

    def teardown(self):
        if hasattr(self, "pair"):
            self.fail_all()
            assert set(self.ends) == set(self.replies)


ClientMachine.TestCase.settings = STATEFUL
TestClientMachine = ClientMachine.TestCase


# -- the registry never resolves private or unregistered names ------------------------------


class Service:
    def mul(self, x: object) -> object:
        return x

    def get_user_id(self, x: object) -> object:
        return x

    def _secret(self, x: object) -> object:
        return x


REGISTRY = Registry()
REGISTRY.register(Service())
REGISTRY.register(lambda x: x, name="Other.Echo")
SERVED = {
    "Service.Mul",
    "Service.mul",
    "Service.GetUserId",
    "Service.get_user_id",
    "Other.Echo",
}

wire_names = st.text(alphabet="_.SeviceOthrMulgtsd", max_size=24) | st.sampled_from(
    sorted(SERVED | {"Service._secret", "Service.__init__", "Service.mul.__globals__"})
)


@SETTINGS
@given(wire_names)
def test_registry_resolves_only_registered_names(name):
    found = REGISTRY.lookup(name)
    if name in SERVED:
        assert isinstance(found, Handler)
    else:
        assert isinstance(found, NotFound)
        assert found.text.startswith("rpc: ")
        assert found.text.endswith(name)


@SETTINGS
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3), st.integers(0, 2))
def test_private_names_are_never_resolved(parts, index):
    parts[index % len(parts)] = "_" + parts[index % len(parts)]
    assert isinstance(REGISTRY.lookup(".".join(parts)), NotFound)


@SETTINGS
@given(st.text(max_size=20))
def test_registering_private_names_always_fails(suffix):
    registry = Registry()
    try:
        registry.register(lambda x: x, name="Svc._" + suffix)
    except ValueError:
        pass
    else:
        raise AssertionError("a private name was registered")
    assert len(registry) == 0


# -- a handler exception always becomes an error reply ---------------------------------------


class CustomError(Exception):
    pass


class NoTextError(Exception):
    def __str__(self) -> str:
        return ""


exception_types = st.sampled_from(
    [ValueError, KeyError, RuntimeError, ZeroDivisionError, OSError, CustomError, NoTextError]
)


@SETTINGS
@given(exception_types, error_texts, st.sampled_from([Json(), MsgPack()]), st.booleans())
def test_handler_exception_always_becomes_error_reply(exc_type, text, formatter, is_async):
    def fail(arg: object) -> None:
        raise exc_type(text)

    async def fail_async(arg: object) -> None:
        raise exc_type(text)

    registry = Registry()
    registry.register(fail_async if is_async else fail, name="Svc.Fail")
    pair = LoopbackPair(registry, formatter=formatter)
    started = pair.start("Svc.Fail", None)
    served = pair.serve(started.publish)
    reply = served.reply  # exactly one reply, whatever the exception said
    assert reply.routing_key == REPLY_QUEUE
    headers = reply.properties.headers
    assert headers is not None
    assert isinstance(headers[ERROR_HEADER], str)
    assert headers[ERROR_HEADER]
    assert headers[ERROR_TYPE_HEADER] == exc_type.__name__
    assert reply.body == formatter.pack({})
    assert pair.server.in_flight == 0
    done = pair.reply_to_client(reply)  # through the wire encoding: always sendable
    assert isinstance(done, CallDone)
    assert isinstance(done.error, RemoteError)
    assert done.error.remote_type == exc_type.__name__


@SETTINGS
@given(st.binary(max_size=64), st.sampled_from([Json(), MsgPack()]))
def test_server_answers_any_body(body, formatter):
    registry = Registry()
    registry.register(lambda arg: arg, name="Svc.Echo")
    pair = LoopbackPair(registry, formatter=formatter)
    properties = Properties(reply_to="Svc.Echo", correlation_id=REPLY_QUEUE, message_id="0")
    served = pair.serve(Publish(routing_key=REQUEST_QUEUE, properties=properties, body=body))
    reply = served.reply  # exactly one reply: the echo, or an error, never silence
    if served.invoke is None:
        assert reply.properties.headers is not None
        assert reply.properties.headers[ERROR_TYPE_HEADER] == "ProtocolViolation"
    else:
        assert reply.body == formatter.pack(served.invoke.arg)
    assert pair.server.in_flight == 0
