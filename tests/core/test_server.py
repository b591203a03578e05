"""ServerProtocol: request deliveries in, replies and acks out (PROTOCOL.md sections 3-4, 9)."""

from __future__ import annotations

import pytest

from amqprpc import Json, MsgPack, Registry, UsageError
from amqprpc._frames import decode_content_header, encode_content_header
from amqprpc._server import DeliveryState
from amqprpc.protocol import (
    Ack,
    Action,
    Delivery,
    Invoke,
    Outcome,
    Properties,
    Publish,
    Received,
    Reject,
    ServerProtocol,
    call_handler,
)

from .helpers import REPLY_QUEUE, LoopbackPair, run_coroutine, run_invoke

GO_REQUEST_HEADER = bytes.fromhex(
    "003c0000000000000000001706801e616d712e67656e2d47764c5a706468735a58394f376743673847785451"
    "6708546573742e4d756c0130"
)
GO_MUL_ARGS = bytes.fromhex("82a141d30000000000000006a142d30000000000000007")


class EmptyError(Exception):
    def __str__(self) -> str:
        return ""


class Test:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> dict[str, int]:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def echo(self, arg: object) -> object:
        return arg

    def fail(self, kind: str) -> None:
        if kind == "empty":
            raise EmptyError()
        if kind == "blank":
            raise KeyError()
        raise ValueError(kind)

    def nan(self, arg: object) -> float:
        return float("nan")

    async def sleep(self, args: dict[str, int]) -> bool:
        return args["Ms"] >= 0

    async def async_fail(self, arg: object) -> None:
        raise RuntimeError("async boom")


def make_registry() -> Registry:
    registry = Registry()
    registry.register(Test())
    return registry


def request(
    body: bytes = b"{}",
    *,
    method: str | None = "Test.Echo",
    reply_queue: str | None = REPLY_QUEUE,
    call_id: str | None = "0",
    tag: int = 1,
) -> Delivery:
    properties = Properties(reply_to=method, correlation_id=reply_queue, message_id=call_id)
    return Delivery(properties=properties, body=body, delivery_tag=tag)


class AckingServer(ServerProtocol):
    """A ServerProtocol whose owed acks come out with each answer, as an adapter that sends
    them at once would perform them (batching itself is tested in test_acks.py)."""

    def receive(self, delivery: Delivery) -> Received:
        received = super().receive(delivery)
        if received.invoke is not None:
            return received
        return Received(actions=(*received.actions, *self.flush_acks()))

    def finish(self, invoke: Invoke, outcome: Outcome) -> tuple[Action, ...]:
        return (*super().finish(invoke, outcome), *self.flush_acks())


def server(formatter: object = None, **kwargs: object) -> ServerProtocol:
    return AckingServer(registry=make_registry(), formatter=formatter or Json(), **kwargs)  # type: ignore[arg-type]


def error_of(publish: Publish) -> tuple[object, object]:
    headers = publish.properties.headers or {}
    return headers.get("error"), headers.get("error_type")


# -- ack ordering ---------------------------------------------------------------------------


def test_late_ack_comes_after_the_reply_and_after_the_handler():
    proto = server()
    received = proto.receive(request(b'{"A":6,"B":7}', method="Test.Mul", tag=5))
    assert received.actions == ()  # nothing is acked before the handler ran
    invoke = received.invoke
    assert invoke is not None
    assert invoke.arg == {"A": 6, "B": 7}
    assert invoke.delivery_tag == 5
    assert invoke.handler.name == "Test.Mul"
    assert proto.in_flight == 1
    assert proto.states() == {5: DeliveryState.INVOKING}
    actions = proto.finish(invoke, call_handler(invoke))
    assert [type(a) for a in actions] == [Publish, Ack]
    reply, ack = actions
    assert ack == Ack(delivery_tag=5)
    assert reply == Publish(
        routing_key=REPLY_QUEUE,
        properties=Properties(reply_to="Test.Mul", correlation_id=REPLY_QUEUE, message_id="0"),
        body=b"42",
    )
    assert proto.in_flight == 0
    assert proto.states() == {}


def test_early_ack_on_receipt_and_reply_alone():
    proto = server(ack="early")
    received = proto.receive(request(b'{"A":6,"B":7}', method="Test.Mul", tag=9))
    assert received.actions == (Ack(delivery_tag=9),)
    assert received.invoke is not None
    actions = proto.finish(received.invoke, call_handler(received.invoke))
    assert [type(a) for a in actions] == [Publish]
    assert actions[0].body == b"42"


@pytest.mark.parametrize("ack", ["late", "early"])
def test_loopback_ack_modes(ack):
    pair = LoopbackPair(make_registry(), ack=ack)
    started = pair.start("Test.Mul", {"A": 6, "B": 7})
    served = pair.serve(started.publish)
    kinds = [type(a) for a in served.actions]
    assert kinds == ([Publish, Ack] if ack == "late" else [Ack, Publish])
    assert served.settles == [Ack(delivery_tag=served.delivery_tag)]
    assert pair.reply_to_client(served.reply).result() == 42


def test_bad_ack_mode_is_refused():
    with pytest.raises(UsageError):
        server(ack="never")


# -- requests that cannot be answered ---------------------------------------------------------


@pytest.mark.parametrize("reply_queue", [None, ""])
def test_request_without_correlation_id_is_rejected_and_server_carries_on(reply_queue):
    proto = server()
    received = proto.receive(request(reply_queue=reply_queue, tag=1))
    assert received.actions == (Reject(delivery_tag=1, requeue=False),)
    assert received.invoke is None
    assert proto.in_flight == 0
    after = proto.receive(request(b'"still here"', tag=2))
    assert after.invoke is not None
    actions = proto.finish(after.invoke, call_handler(after.invoke))
    assert actions[0].body == b'"still here"'
    assert actions[1] == Ack(delivery_tag=2)


def test_request_without_correlation_id_under_early_ack_is_only_acked():
    proto = server(ack="early")
    received = proto.receive(request(reply_queue=None, tag=3))
    assert received.actions == (Ack(delivery_tag=3),)
    assert received.invoke is None


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
    assert reply.properties.headers == {"error": "rpc: service/method request ill-formed: "}
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
    assert reply.properties.headers is None


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
    outcome = call_handler(received.invoke)
    assert isinstance(outcome.error, ValueError)
    reply, ack = proto.finish(received.invoke, outcome)
    assert reply.properties.headers == {"error": "bad input", "error_type": "ValueError"}
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
    reply, ack = proto.finish(received.invoke, call_handler(received.invoke))
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
    reply, _ = proto.finish(received.invoke, call_handler(received.invoke))
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
    reply, ack = proto.finish(invokes[1], call_handler(invokes[1]))  # out of order
    assert (reply.body, ack) == (b"2", Ack(delivery_tag=2))
    assert set(proto.states()) == {1, 3}


# -- running handlers -----------------------------------------------------------------------


def test_async_handler_runs_via_call_handler_async():
    pair = LoopbackPair(make_registry())
    done = pair.call("Test.Sleep", {"Ms": 50})
    assert done.result() is True
    assert pair.served[0].invoke is not None
    assert pair.served[0].invoke.handler.is_async


def test_async_handler_exception_becomes_error_reply():
    pair = LoopbackPair(make_registry(), formatter=MsgPack())
    started = pair.start("Test.AsyncFail", None)
    reply = pair.serve(started.publish).reply
    assert error_of(reply) == ("async boom", "RuntimeError")
    assert reply.body == b"\x80"


def test_call_handler_lets_base_exceptions_through():
    def interrupted(arg: object) -> None:
        raise KeyboardInterrupt

    registry = Registry()
    registry.register(interrupted, name="Svc.Stop")
    received = ServerProtocol(registry=registry, formatter=Json()).receive(
        request(method="Svc.Stop")
    )
    assert isinstance(received.invoke, Invoke)
    with pytest.raises(KeyboardInterrupt):
        call_handler(received.invoke)


def test_run_coroutine_helper_refuses_a_suspending_handler():
    class Suspend:
        def __await__(self):
            yield None

    async def suspends() -> Outcome:
        await Suspend()
        return Outcome()

    with pytest.raises(AssertionError, match="suspended"):
        run_coroutine(suspends())


# -- Go on the other side --------------------------------------------------------------------


def test_go_request_vector_is_served_and_reply_mirrors_it():
    body_size, properties = decode_content_header(GO_REQUEST_HEADER)
    assert body_size == len(GO_MUL_ARGS)
    proto = server(MsgPack())
    received = proto.receive(Delivery(properties=properties, body=GO_MUL_ARGS, delivery_tag=1))
    assert received.invoke is not None
    assert received.invoke.arg == {"A": 6, "B": 7}
    reply, _ = proto.finish(received.invoke, call_handler(received.invoke))
    assert reply.body == b"\x2a"
    assert reply.routing_key == "amq.gen-GvLZpdhsZX9O7gCg8GxTQg"
    # Same properties as the request, so the same content-header bytes after the body size.
    assert encode_content_header(reply.properties, 1)[12:] == GO_REQUEST_HEADER[12:]


def test_div_by_zero_error_reply_matches_go_plus_error_type():
    proto = server(MsgPack())
    args = MsgPack().pack({"A": 1, "B": 0})
    received = proto.receive(request(args, method="Test.Div", call_id="4"))
    assert received.invoke is not None
    reply, _ = proto.finish(received.invoke, call_handler(received.invoke))
    assert reply.properties.headers == {
        "error": "divide by zero",
        "error_type": "ZeroDivisionError",
    }
    assert reply.body == b"\x80"
    assert reply.properties.message_id == "4"
