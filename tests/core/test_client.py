"""ClientProtocol: calls out, replies in (PROTOCOL.md sections 3, 5 and 9)."""

from __future__ import annotations

import math

import pytest

from amqprpc import (
    ConnectionLost,
    EncodeError,
    Json,
    MessageTooLarge,
    MsgPack,
    ProtocolViolation,
    Registry,
    RemoteError,
    RPCError,
    RPCTimeout,
    Unroutable,
    UsageError,
)
from amqprpc._frames import decode_content_header
from amqprpc.protocol import (
    IGNORED,
    CallDone,
    CallState,
    ClientProtocol,
    Delivery,
    Properties,
    Publish,
    Returned,
)

from .helpers import REPLY_QUEUE, REQUEST_QUEUE, LoopbackPair

GO_ERROR_REPLY_HEADER = bytes.fromhex(
    "003c00000000000000000001268000000019056572726f72530000000e646976696465206279207a65726f1e"
    "616d712e67656e2d47764c5a706468735a58394f3767436738477854516708546573742e4469760134"
)


class Test:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> int:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return args["A"] // args["B"]

    def echo(self, arg: object) -> object:
        return arg


def make_pair(**kwargs: object) -> LoopbackPair:
    registry = Registry()
    registry.register(Test())
    return LoopbackPair(registry, **kwargs)  # type: ignore[arg-type]


def client(formatter: object = None, **kwargs: object) -> ClientProtocol[str]:
    return ClientProtocol(
        request_queue=REQUEST_QUEUE,
        reply_queue=REPLY_QUEUE,
        formatter=formatter or Json(),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def reply(call_id: object, body: bytes = b"null", headers: object = None) -> Delivery:
    properties = Properties(
        message_id=None if call_id is None else str(call_id),
        correlation_id=REPLY_QUEUE,
        headers=headers,  # type: ignore[arg-type]
    )
    return Delivery(properties=properties, body=body)


# -- requests -------------------------------------------------------------------------------


def test_request_is_what_go_servers_expect():
    proto = client(timeout=2.5)
    started = proto.start_call("Test.Mul", {"A": 6, "B": 7}, now=100.0, token="tok")
    assert started.call_id == 0
    assert started.deadline == 102.5
    assert started.publish == Publish(
        exchange="",
        routing_key=REQUEST_QUEUE,
        mandatory=True,
        body=b'{"A":6,"B":7}',
        properties=Properties(
            reply_to="Test.Mul",
            correlation_id=REPLY_QUEUE,
            message_id="0",
            expiration="2500",
        ),
        deadline=102.5,  # the link stops waiting to write it then
    )
    assert proto.pending.state(0) is CallState.PENDING
    assert proto.next_deadline() == 102.5


@pytest.mark.parametrize("timeout", [0.0015, 0.25, 1, 7.0001, 30.5, 3600])
def test_expiration_is_ceil_of_timeout_in_ms(timeout):
    started = client().start_call("Test.Mul", 1, now=0.0, timeout=timeout, token="t")
    assert started.publish.properties.expiration == str(math.ceil(timeout * 1000))
    assert started.deadline == timeout


def test_call_numbers_count_from_zero():
    proto = client()
    ids = [proto.start_call("Test.Echo", i, now=0.0, token="t").call_id for i in range(3)]
    assert ids == [0, 1, 2]
    assert len(proto.pending) == 3


def test_msgpack_request_body():
    started = client(MsgPack()).start_call("Test.Mul", {"A": 6, "B": 7}, now=0.0, token="t")
    assert started.publish.body.hex() == "82a14106a14207"


def test_nan_with_json_raises_and_leaves_nothing_pending():
    proto = client()
    with pytest.raises(EncodeError):
        proto.start_call("Test.Echo", float("nan"), now=0.0, token="t")
    assert len(proto.pending) == 0
    assert proto.next_deadline() is None
    assert proto.start_call("Test.Echo", 1, now=0.0, token="t").call_id == 0  # no id used


def test_message_too_large_before_anything_is_pending():
    proto = client(max_body_size=10)
    with pytest.raises(MessageTooLarge, match="11 bytes"):
        proto.start_call("Test.Echo", "x" * 9, now=0.0, token="t")
    assert len(proto.pending) == 0
    assert issubclass(MessageTooLarge, EncodeError)
    assert proto.start_call("Test.Echo", "x" * 8, now=0.0, token="t").call_id == 0


@pytest.mark.parametrize("method", ["", "x" * 256, None, 5])
def test_bad_method_names_are_usage_errors(method):
    proto = client()
    with pytest.raises(UsageError):
        proto.start_call(method, 1, now=0.0, token="t")
    assert len(proto.pending) == 0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_bad_timeouts_are_usage_errors(timeout):
    with pytest.raises(UsageError):
        client().start_call("Test.Mul", 1, now=0.0, timeout=timeout, token="t")
    with pytest.raises(UsageError):
        client(timeout=timeout)


@pytest.mark.parametrize("queue", ["", "q" * 256])
def test_queues_must_be_shortstrs(queue):
    with pytest.raises(UsageError):
        ClientProtocol(request_queue=REQUEST_QUEUE, reply_queue=queue, formatter=Json())
    with pytest.raises(UsageError):
        ClientProtocol(request_queue=queue, reply_queue=REPLY_QUEUE, formatter=Json())
    proto = client()
    with pytest.raises(UsageError):
        proto.reply_queue = queue
    assert proto.reply_queue == REPLY_QUEUE


def test_reply_queue_can_be_renamed_after_redeclare():
    proto = client()
    proto.reply_queue = "amq.gen-other"
    started = proto.start_call("Test.Mul", 1, now=0.0, token="t")
    assert started.publish.properties.correlation_id == "amq.gen-other"


# -- results --------------------------------------------------------------------------------


@pytest.mark.parametrize("formatter", [Json(), MsgPack()])
def test_round_trip_result(formatter):
    pair = make_pair(formatter=formatter)
    done = pair.call("Test.Mul", {"A": 6, "B": 7})
    assert done.result() == 42
    assert done.value == 42
    assert done.error is None
    assert len(pair.client.pending) == 0


def test_remote_error_with_remote_type():
    pair = make_pair()
    done = pair.call("Test.Div", {"A": 1, "B": 0})
    assert isinstance(done.error, RemoteError)
    assert str(done.error) == "divide by zero"
    assert done.error.text == "divide by zero"
    assert done.error.remote_type == "ZeroDivisionError"
    with pytest.raises(RemoteError) as info:
        done.result()
    assert info.value is done.error
    assert "ZeroDivisionError" in repr(info.value)


def test_remote_error_from_unknown_method_has_no_remote_type():
    done = make_pair().call("Test.Nope", 1)
    assert isinstance(done.error, RemoteError)
    assert str(done.error) == "rpc: can't find method Test.Nope"
    assert done.error.remote_type is None


def test_go_error_reply_vector_fails_call_4():
    proto = client(MsgPack())
    for i in range(5):
        proto.start_call("Test.Div", {"A": i, "B": 0}, now=0.0, token=f"t{i}")
    _, properties = decode_content_header(GO_ERROR_REPLY_HEADER)
    done = proto.receive(Delivery(properties=properties, body=b"\x80"))
    assert isinstance(done, CallDone)
    assert (done.call_id, done.token) == (4, "t4")
    assert isinstance(done.error, RemoteError)
    assert str(done.error) == "divide by zero"
    assert done.error.remote_type is None
    assert len(proto.pending) == 4


def test_error_reply_body_is_not_decoded():
    proto = client()
    proto.start_call("Test.Div", 1, now=0.0, token="t")
    done = proto.receive(reply(0, b"\xff garbage", {"error": "boom"}))
    assert isinstance(done, CallDone)
    assert isinstance(done.error, RemoteError)


def test_empty_error_header_is_success():
    proto = client()
    proto.start_call("Test.Echo", 1, now=0.0, token="t")
    done = proto.receive(reply(0, b"null", {"error": ""}))
    assert isinstance(done, CallDone)
    assert done.error is None
    assert done.result() is None


def test_timeout_via_expire():
    proto = client(timeout=5.0)
    proto.start_call("Test.Mul", 1, now=10.0, token="a")
    proto.start_call("Test.Mul", 2, now=11.0, token="b")
    assert proto.expire(14.999) == []
    (done,) = proto.expire(15.0)
    assert (done.call_id, done.token) == (0, "a")
    assert isinstance(done.error, RPCTimeout)
    assert isinstance(done.error, TimeoutError)
    assert isinstance(done.error, RPCError)
    assert "Test.Mul" in str(done.error)
    assert "5 s" in str(done.error)
    with pytest.raises(TimeoutError):
        done.result()
    assert proto.next_deadline() == 16.0
    assert proto.receive(reply(0, b"1")) is IGNORED  # late
    assert proto.pending.stats.late == 1


def test_unroutable_via_returned():
    pair = make_pair()
    pair.client.request_queue = "no-such-queue"
    started = pair.start("Test.Mul", {"A": 1, "B": 2})
    done = pair.route(started.publish)
    assert isinstance(done, CallDone)
    assert isinstance(done.error, Unroutable)
    assert "no-such-queue" in str(done.error)
    assert "312 NO_ROUTE" in str(done.error)
    assert pair.served == []
    assert len(pair.client.pending) == 0


def test_returned_for_unknown_or_garbled_call_is_ignored():
    proto = client()
    started = proto.start_call("Test.Mul", 1, now=0.0, token="t")
    assert proto.receive(reply(0)) is not IGNORED
    returned = Returned(
        reply_code=312,
        reply_text="NO_ROUTE",
        routing_key=REQUEST_QUEUE,
        properties=started.publish.properties,
    )
    assert proto.returned(returned) is IGNORED  # already answered
    garbled = Returned(
        reply_code=312, reply_text="NO_ROUTE", routing_key="q", properties=Properties()
    )
    assert proto.returned(garbled) is IGNORED


def test_connection_lost_via_fail_all():
    proto = client()
    for i in range(3):
        proto.start_call("Test.Echo", i, now=0.0, token=f"t{i}")
    proto.receive(reply(1))
    lost = proto.fail_all("channel closed")
    assert sorted(d.call_id for d in lost) == [0, 2]
    for done in lost:
        assert isinstance(done.error, ConnectionLost)
        assert str(done.error) == "channel closed"
    assert len(proto.pending) == 0
    assert proto.next_deadline() is None
    assert proto.fail_all("again") == []


@pytest.mark.parametrize(("formatter", "garbage"), [(Json(), b"{nope"), (MsgPack(), b"")])
def test_garbage_body_fails_only_its_own_call(formatter, garbage):
    proto = client(formatter)
    for i in range(2):
        proto.start_call("Test.Echo", i, now=0.0, token=f"t{i}")
    bad = proto.receive(reply(0, garbage))
    assert isinstance(bad, CallDone)
    assert isinstance(bad.error, ProtocolViolation)
    good = proto.receive(reply(1, formatter.pack("fine")))
    assert isinstance(good, CallDone)
    assert good.result() == "fine"


@pytest.mark.parametrize("value", [b"boom", 7, False, ["boom"]])
def test_non_str_error_header_fails_only_its_call(value):
    proto = client()
    for i in range(2):
        proto.start_call("Test.Echo", i, now=0.0, token=f"t{i}")
    bad = proto.receive(reply(1, b"{}", {"error": value}))
    assert isinstance(bad, CallDone)
    assert bad.call_id == 1
    assert isinstance(bad.error, ProtocolViolation)
    assert "not str" in str(bad.error)
    assert proto.pending.state(0) is CallState.PENDING
    good = proto.receive(reply(0, b"5"))
    assert isinstance(good, CallDone)
    assert good.result() == 5


def test_unknown_and_duplicate_ids_are_ignored():
    proto = client()
    proto.start_call("Test.Echo", 0, now=0.0, token="t")
    assert proto.receive(reply(7)) is IGNORED
    first = proto.receive(reply(0, b"1"))
    assert isinstance(first, CallDone)
    assert proto.receive(reply(0, b"2")) is IGNORED
    stats = proto.pending.stats
    assert (stats.unknown, stats.duplicate, stats.late) == (1, 1, 0)


@pytest.mark.parametrize("message_id", [None, "", "abc", "-1", "18446744073709551616"])
def test_reply_without_call_number_is_ignored_and_counted(message_id):
    proto = client()
    proto.start_call("Test.Echo", 0, now=0.0, token="t")
    properties = Properties(message_id=message_id)
    assert proto.receive(Delivery(properties=properties, body=b"1")) is IGNORED
    assert proto.malformed == 1
    assert proto.pending.state(0) is CallState.PENDING


def test_cancel():
    proto = client()
    proto.start_call("Test.Echo", 0, now=0.0, token="t")
    assert proto.cancel(0) is True
    assert proto.cancel(0) is False
    assert proto.cancel(42) is False
    assert proto.receive(reply(0)) is IGNORED
    assert proto.expire(1e9) == []


def test_replies_in_any_order():
    pair = make_pair()
    started = [pair.start("Test.Echo", i) for i in range(5)]
    served = [pair.serve(s.publish) for s in started]
    results = {}
    for s in reversed(served):
        done = pair.reply_to_client(s.reply)
        assert isinstance(done, CallDone)
        results[done.call_id] = done.result()
    assert results == {i: i for i in range(5)}
    assert len(pair.client.pending) == 0
