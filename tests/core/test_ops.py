"""The multi-step ops, driven by hand with send(): no loop, no broker, no fake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from amqprpc import (
    ConnectionLost,
    EncodeError,
    ProtocolViolation,
    Registry,
    RemoteError,
    RPCTimeout,
)
from amqprpc.protocol import (
    CallDone,
    CallState,
    CancelConsume,
    CloseChannel,
    Consume,
    Consuming,
    DeclareQueue,
    Op,
    Publish,
    Qos,
    QueueDeclared,
    WaitFor,
    call_op,
    cancel_consume_op,
    client_setup_op,
    close_op,
    consume_op,
    reply_queue_name,
    request_queue_declaration,
    server_setup_op,
)

from .helpers import REQUEST_QUEUE, LoopbackPair

T = TypeVar("T")


def run(op: Op[Any, T], perform: Callable[[object], object]) -> T:
    """The pump of STYLE.md section 3, with `perform` standing in for a link and a wait."""
    try:
        action = next(op)
        while True:
            action = op.send(perform(action))  # type: ignore[arg-type]
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def steps(op: Op[Any, T], answers: list[object]) -> tuple[list[object], T]:
    """Drive `op`, answering each action in turn; returns the actions and the op's result."""
    actions: list[object] = []
    replies = iter(answers)

    def perform(action: object) -> object:
        actions.append(action)
        return next(replies, None)

    return actions, run(op, perform)


class Arith:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> int:
        return args["A"] // args["B"]


def make_pair() -> LoopbackPair:
    registry = Registry()
    registry.register(Arith())
    return LoopbackPair(registry)


# -- server setup and teardown -----------------------------------------------------------


def test_server_setup_declares_exactly_the_go_flags():
    op = server_setup_op("testrpc", prefetch=10)
    declare = next(op)
    assert declare == DeclareQueue(
        queue="testrpc", durable=False, exclusive=False, auto_delete=False
    )
    assert (declare.durable, declare.exclusive, declare.auto_delete) == (False, False, False)
    answer = QueueDeclared(queue="testrpc", message_count=3, consumer_count=1)
    assert op.send(answer) == Qos(prefetch_count=10)
    with pytest.raises(StopIteration) as stop:
        op.send(None)
    assert stop.value.value is None


def test_server_setup_no_ack_skips_qos():
    actions, result = steps(server_setup_op("testrpc", prefetch=10, no_ack=True), [])
    assert actions == [request_queue_declaration("testrpc")]
    assert result is None


def test_consume_returns_the_consumer_tag():
    actions, tag = steps(consume_op("q"), [Consuming(consumer_tag="ctag-1")])
    assert actions == [Consume(queue="q", no_ack=False)]
    assert tag == "ctag-1"


def test_consume_needs_the_brokers_answer():
    op = consume_op("q")
    next(op)
    with pytest.raises(ProtocolViolation):
        op.send(None)


def test_teardown_is_actions_too():
    assert steps(cancel_consume_op("ctag-1"), [])[0] == [CancelConsume(consumer_tag="ctag-1")]
    assert steps(cancel_consume_op(None), [])[0] == []  # never consumed: nothing to cancel
    assert steps(close_op(), [])[0] == [CloseChannel()]


# -- client setup ---------------------------------------------------------------------------


def test_client_setup_declares_its_private_reply_queue_and_consumes_it():
    name = reply_queue_name("abc")
    assert name == "amqprpc.reply.abc"
    op = client_setup_op(name)
    assert next(op) == DeclareQueue(queue=name, exclusive=True, auto_delete=True)
    assert op.send(QueueDeclared(queue=name)) == Consume(queue=name, no_ack=True, exclusive=True)
    with pytest.raises(StopIteration) as stop:
        op.send(Consuming(consumer_tag="ctag"))
    assert stop.value.value is None


@pytest.mark.parametrize("answer", [None, QueueDeclared(queue="other"), "amqprpc.reply.x"])
def test_client_setup_needs_its_own_queue_declared(answer):
    op = client_setup_op("amqprpc.reply.x")
    next(op)
    with pytest.raises(ProtocolViolation):
        op.send(answer)  # type: ignore[arg-type]


# -- one call -------------------------------------------------------------------------------


def test_call_op_by_hand():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", {"A": 6, "B": 7}, now=10.0, timeout=2.0, token="tk")
    publish = next(op)
    assert isinstance(publish, Publish)
    assert publish.routing_key == REQUEST_QUEUE
    assert publish.mandatory is True
    wait = op.send(None)
    assert wait == WaitFor(call_id=0, token="tk")
    assert pair.client.next_deadline() == 12.0
    assert pair.client.pending.state(0) is CallState.PENDING
    done = pair.route(publish)
    with pytest.raises(StopIteration) as stop:
        op.send(done)  # type: ignore[arg-type]
    assert stop.value.value == 42
    assert len(pair.client.pending) == 0


def test_call_op_through_a_pump():
    pair = make_pair()
    outbox: list[Publish] = []

    def perform(action: object) -> object:
        if isinstance(action, Publish):
            outbox.append(action)
            return None
        assert isinstance(action, WaitFor)
        return pair.route(outbox.pop())

    op = call_op(pair.client, "Arith.Mul", {"A": 3, "B": 5}, now=0.0, token="t")
    assert run(op, perform) == 15
    assert outbox == []


def test_call_op_raises_remote_error():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Div", {"A": 1, "B": 0}, now=0.0, token="t")
    publish = next(op)
    op.send(None)
    with pytest.raises(RemoteError) as info:
        op.send(pair.route(publish))  # type: ignore[arg-type]
    assert info.value.remote_type == "ZeroDivisionError"


def test_call_op_raises_timeout_from_expire():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 1}, now=0.0, timeout=1.0, token="t")
    next(op)
    wait = op.send(None)
    assert isinstance(wait, WaitFor)
    (done,) = pair.client.expire(1.0)
    with pytest.raises(RPCTimeout):
        op.send(done)  # type: ignore[arg-type]


def test_call_op_encode_error_happens_before_anything_is_yielded():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", float("nan"), now=0.0, token="t")
    with pytest.raises(EncodeError):
        next(op)
    assert len(pair.client.pending) == 0


def test_failed_publish_ends_the_call_unsent_with_the_links_error():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 1}, now=0.0, token="t")
    next(op)
    error = ConnectionLost("publishing to 'testrpc': connection closed")
    with pytest.raises(ConnectionLost) as info:
        op.throw(error)
    assert info.value is error
    assert len(pair.client.pending) == 0
    assert pair.client.pending.state(0) is CallState.UNSENT


def test_interrupted_publish_cancels_the_call():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 1}, now=0.0, token="t")
    next(op)
    with pytest.raises(KeyboardInterrupt):
        op.throw(KeyboardInterrupt())
    assert pair.client.pending.state(0) is CallState.CANCELLED


def test_abandoned_wait_cancels_the_call():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 1}, now=0.0, token="t")
    next(op)
    op.send(None)
    op.close()  # the pump stopped waiting (e.g. the caller was cancelled)
    assert len(pair.client.pending) == 0
    assert pair.client.pending.state(0) is CallState.CANCELLED


def test_call_op_needs_a_call_done():
    pair = make_pair()
    op = call_op(pair.client, "Arith.Mul", {"A": 1, "B": 1}, now=0.0, token="t")
    next(op)
    op.send(None)
    with pytest.raises(ProtocolViolation, match="not a CallDone"):
        op.send(None)
    assert len(pair.client.pending) == 0  # the odd wait ended the call: nothing left behind


def test_call_done_result():
    assert CallDone(call_id=1, token=None, value=5).result() == 5
    error = RemoteError("boom")
    with pytest.raises(RemoteError) as info:
        CallDone(call_id=1, token=None, error=error).result()
    assert info.value is error
