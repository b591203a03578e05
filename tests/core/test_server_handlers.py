"""ServerProtocol: running sync and async handlers, and serving Go's request vectors."""

from __future__ import annotations

import pytest

from amqprpc import Json, MsgPack, Registry
from amqprpc._frames import decode_content_header, encode_content_header
from amqprpc.protocol import Delivery, Invoke, Outcome, ServerProtocol, call_handler
from tests.core.helpers import wall_clock

from .helpers import LoopbackPair, run_coroutine
from .server_helpers import error_of, make_registry, request, server

GO_REQUEST_HEADER = bytes.fromhex(
    "003c0000000000000000001706801e616d712e67656e2d47764c5a706468735a58394f376743673847785451"
    "6708546573742e4d756c0130"
)
GO_MUL_ARGS = bytes.fromhex("82a141d30000000000000006a142d30000000000000007")


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
        call_handler(received.invoke, wall_clock)


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
    reply, _ = proto.finish(received.invoke, call_handler(received.invoke, wall_clock))
    assert reply.body == b"\x2a"
    assert reply.routing_key == "amq.gen-GvLZpdhsZX9O7gCg8GxTQg"
    # Same properties as the request, plus the reply mark (PROTOCOL.md 12.2): without it, the
    # same content-header bytes after the body size.
    assert reply.properties.headers == {"amqprpc-reply": "1"}
    reply.properties.headers = None
    assert encode_content_header(reply.properties, 1)[12:] == GO_REQUEST_HEADER[12:]


def test_div_by_zero_error_reply_matches_go_plus_error_type():
    proto = server(MsgPack())
    args = MsgPack().pack({"A": 1, "B": 0})
    received = proto.receive(request(args, method="Test.Div", call_id="4"))
    assert received.invoke is not None
    reply, _ = proto.finish(received.invoke, call_handler(received.invoke, wall_clock))
    assert reply.properties.headers == {
        "error": "divide by zero",
        "error_type": "ZeroDivisionError",
        "amqprpc-reply": "1",
    }
    assert reply.body == b"\x80"
    assert reply.properties.message_id == "4"
