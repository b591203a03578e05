"""ServerProtocol's error replies: unknown names, handler exceptions, undecodable arguments,
unencodable and oversize bodies, and what each reply carries."""

from __future__ import annotations

import pytest

from amqprpc import Json, MsgPack
from amqprpc._server import DeliveryState
from amqprpc.protocol import Ack, Outcome, Publish, call_handler
from tests.core.helpers import wall_clock

from .helpers import REPLY_QUEUE, LoopbackPair, run_invoke
from .server_helpers import AckingServer, error_of, make_registry, request, server

# -- error replies --------------------------------------------------------------------------


@pytest.mark.parametrize("method", [None, ""])
def test_missing_reply_to_gives_ill_formed_error(method):
    proto = server()
    received = proto.receive(request(method=method))
    assert received.invoke is None
    reply, ack = received.actions
    assert isinstance(reply, Publish)
    assert error_of(reply) == ("rpc: service/method request ill-formed: ", None)
    assert reply.properties.reply_to == method
    assert reply.properties.headers == {
        "error": "rpc: service/method request ill-formed: ", "amqprpc-reply": "1"
    }  # fmt: skip
    assert reply.body == b"{}"
    assert ack == Ack(delivery_tag=1)


@pytest.mark.parametrize(
    ("method", "text"),
    [
        ("Mul", "rpc: service/method request ill-formed: Mul"),
        ("Nope.Mul", "rpc: can't find service Nope.Mul"),
        ("Test.Nope", "rpc: can't find method Test.Nope"),
        ("Test._secret", "rpc: can't find method Test._secret"),
        ("Test.mul.__globals__", "rpc: can't find service Test.mul.__globals__"),
    ],
)
def test_unknown_names_get_net_rpc_texts(method, text):
    received = server().receive(request(method=method))
    assert received.invoke is None
    assert error_of(received.actions[0]) == (text, None)


def test_missing_message_id_still_gets_a_reply_without_one():
    pair = LoopbackPair(make_registry())
    delivery = request(b"7", call_id=None)
    received = pair.server.receive(delivery)
    assert received.invoke is not None
    (reply,) = pair.server.finish(received.invoke, run_invoke(received.invoke))
    assert reply.properties.message_id is None
    assert reply.body == b"7"
    assert reply.properties.headers == {"amqprpc-reply": "1"}


def test_message_id_is_copied_verbatim():
    proto = server()
    received = proto.receive(request(b"1", call_id="abc"))
    assert received.invoke is not None
    reply, _ = proto.finish(received.invoke, Outcome(value=1))
    assert reply.properties.message_id == "abc"


@pytest.mark.parametrize(("formatter", "body"), [(Json(), b"{}"), (MsgPack(), b"\x80")])
def test_handler_exception_becomes_error_reply(formatter, body):
    proto = server(formatter)
    received = proto.receive(request(formatter.pack("bad input"), method="Test.Fail"))
    assert received.invoke is not None
    outcome = call_handler(received.invoke, wall_clock)
    assert isinstance(outcome.error, ValueError)
    reply, ack = proto.finish(received.invoke, outcome)
    assert reply.properties.headers == {
        "error": "bad input", "error_type": "ValueError", "amqprpc-reply": "1"
    }  # fmt: skip
    assert reply.body == body
    assert reply.routing_key == REPLY_QUEUE
    assert reply.properties.message_id == "0"
    assert reply.properties.reply_to == "Test.Fail"
    assert ack == Ack(delivery_tag=1)


@pytest.mark.parametrize(("kind", "expected"), [("empty", "EmptyError"), ("blank", "KeyError")])
def test_exception_with_empty_text_still_gives_an_error(kind, expected):
    pair = LoopbackPair(make_registry())
    started = pair.start("Test.Fail", kind)
    reply = pair.serve(started.publish).reply
    error, error_type = error_of(reply)
    assert error_type == expected
    assert isinstance(error, str)
    assert error  # never empty: an empty error header reads as success to a Go client


def test_unencodable_result_gives_error_reply():
    proto = server(Json())
    received = proto.receive(request(method="Test.Nan"))
    assert received.invoke is not None
    reply, ack = proto.finish(received.invoke, call_handler(received.invoke, wall_clock))
    error, error_type = error_of(reply)
    assert isinstance(error, str)
    assert error.startswith("amqprpc: cannot encode result:")
    assert error_type == "EncodeError"
    assert reply.body == b"{}"
    assert ack == Ack(delivery_tag=1)


def test_oversize_request_body_gets_error_reply_without_running_handler():
    proto = server(max_body_size=10)
    received = proto.receive(request(b'"' + b"x" * 20 + b'"', tag=4))
    assert received.invoke is None
    reply, ack = received.actions
    error, error_type = error_of(reply)
    assert isinstance(error, str)
    assert "22 bytes" in error
    assert "10 bytes" in error
    assert error_type == "ProtocolViolation"
    assert ack == Ack(delivery_tag=4)
    assert proto.in_flight == 0


def test_oversize_result_gives_error_reply():
    proto = server(max_body_size=8)
    received = proto.receive(request(b'"short"'))
    assert received.invoke is not None
    reply, _ = proto.finish(received.invoke, Outcome(value="x" * 100))
    assert error_of(reply)[1] == "EncodeError"


@pytest.mark.parametrize(("formatter", "garbage"), [(Json(), b"{nope"), (MsgPack(), b"\xc1")])
def test_undecodable_argument_gets_error_reply(formatter, garbage):
    proto = server(formatter)
    received = proto.receive(request(garbage, method="Test.Echo"))
    assert received.invoke is None
    reply, ack = received.actions
    error, error_type = error_of(reply)
    assert error_type == "ProtocolViolation"
    assert isinstance(error, str)
    assert error
    assert isinstance(ack, Ack)


def test_error_body_is_empty_when_formatter_cannot_encode_empty_map():
    class NoMaps:
        def pack(self, obj: object) -> bytes:
            if isinstance(obj, dict):
                raise TypeError("no maps")
            return repr(obj).encode()

        def unpack(self, body: bytes) -> object:
            return body.decode()

    proto = AckingServer(registry=make_registry(), formatter=NoMaps())
    received = proto.receive(request(b"x", method="Test.Fail"))
    assert received.invoke is not None
    reply, _ = proto.finish(received.invoke, call_handler(received.invoke, wall_clock))
    assert reply.body == b""
    assert error_of(reply) == ("x", "ValueError")


def test_many_deliveries_in_flight_are_tracked_separately():
    proto = server()
    invokes = []
    for tag in (1, 2, 3):
        received = proto.receive(request(str(tag).encode(), tag=tag))
        assert received.invoke is not None
        invokes.append(received.invoke)
    assert proto.states() == dict.fromkeys((1, 2, 3), DeliveryState.INVOKING)
    reply, ack = proto.finish(invokes[1], call_handler(invokes[1], wall_clock))  # out of order
    assert (reply.body, ack) == (b"2", Ack(delivery_tag=2))
    assert set(proto.states()) == {1, 3}
