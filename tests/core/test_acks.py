"""Batched acks (ServerProtocol.flush_acks): what a broker would see is always valid and
acknowledges each delivery exactly once, after its reply."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from amqprpc import Json, Registry
from amqprpc._server import call_handler
from amqprpc.protocol import Ack, Delivery, Properties, Publish, Reject, ServerProtocol
from tests.core.helpers import wall_clock


class Test:
    def echo(self, arg: object) -> object:
        return arg


def server(ack: str = "late") -> ServerProtocol:
    registry = Registry()
    registry.register(Test())
    return ServerProtocol(registry=registry, formatter=Json(), ack=ack)  # type: ignore[arg-type]


def request(tag: int, method: str = "Test.Echo") -> Delivery:
    props = Properties(correlation_id="amq.gen-reply", reply_to=method, message_id=str(tag))
    return Delivery(properties=props, body=b"1", delivery_tag=tag)


def unanswerable(tag: int) -> Delivery:
    """A request without a reply queue: it can only be rejected."""
    return Delivery(properties=Properties(reply_to="Test.Echo"), body=b"1", delivery_tag=tag)


class Broker:
    """The channel's view: outstanding tags, and the AMQP rules for basic.ack."""

    def __init__(self) -> None:
        self.outstanding: set[int] = set()
        self.acked: list[int] = []
        self.rejected: list[int] = []

    def deliver(self, tag: int) -> None:
        self.outstanding.add(tag)

    def apply(self, ack: Ack | Reject) -> None:
        # A single ack or a reject of a tag that is not outstanding closes the channel (406); a
        # multiple ack needs its upper tag outstanding too, and acks every outstanding tag up
        # to it.
        assert ack.delivery_tag in self.outstanding, (ack, sorted(self.outstanding))
        if isinstance(ack, Reject):
            self.outstanding.remove(ack.delivery_tag)
            self.rejected.append(ack.delivery_tag)
            return
        tags = (
            [t for t in self.outstanding if t <= ack.delivery_tag]
            if ack.multiple
            else [ack.delivery_tag]
        )
        for tag in tags:
            self.outstanding.remove(tag)
            self.acked.append(tag)


def apply_all(broker: Broker, actions: tuple[object, ...]) -> None:
    for action in actions:
        if isinstance(action, (Ack, Reject)):
            broker.apply(action)


def test_late_acks_wait_for_the_reply_and_batch_below_the_oldest() -> None:
    proto, broker = server(), Broker()
    invokes = {}
    for tag in (1, 2, 3):
        broker.deliver(tag)
        received = proto.receive(request(tag))
        assert received.actions == ()  # nothing is acked before its reply
        invokes[tag] = received.invoke
    assert proto.flush_acks() == ()
    actions = proto.finish(invokes[2], call_handler(invokes[2], wall_clock))
    assert [type(a) for a in actions] == [Publish]  # the ack is owed, not sent yet
    assert proto.flush_acks() == (Ack(delivery_tag=2),)  # 1 is still running: single ack
    proto.finish(invokes[1], call_handler(invokes[1], wall_clock))
    assert proto.flush_acks() == (Ack(delivery_tag=1),)  # one owed: a single ack
    proto.finish(invokes[3], call_handler(invokes[3], wall_clock))
    assert proto.flush_acks() == (Ack(delivery_tag=3),)
    broker = Broker()
    for tag in (4, 5, 6):
        broker.deliver(tag)
        invokes[tag] = proto.receive(request(tag)).invoke
    for tag in (5, 4):
        proto.finish(invokes[tag], call_handler(invokes[tag], wall_clock))
    assert proto.flush_acks() == (Ack(delivery_tag=5, multiple=True),)  # both below 6


def test_early_acks_come_with_the_delivery_before_its_handler() -> None:
    proto = server("early")
    for tag in (1, 2, 3):
        received = proto.receive(request(tag))
        assert received.actions == (Ack(delivery_tag=tag),)
        assert received.invoke is not None
    assert proto.flush_acks() == ()


def test_answered_on_the_spot_and_rejected_requests() -> None:
    proto, broker = server(), Broker()
    broker.deliver(1)
    assert [type(a) for a in proto.receive(request(1, "Nope.Nope")).actions] == [Publish]
    broker.deliver(2)
    assert proto.receive(unanswerable(2)).actions == ()  # its reject goes with the acks
    broker.deliver(3)
    proto.receive(request(3, "Nope.Nope"))
    flushed = proto.flush_acks()
    assert flushed == (Reject(delivery_tag=2), Ack(delivery_tag=3, multiple=True))
    for ack in flushed:
        broker.apply(ack)
    assert broker.outstanding == set() and broker.acked == [1, 3] and broker.rejected == [2]


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from(["late", "early"]))
def test_any_order_of_answers_acks_each_delivery_once_after_its_reply(
    data: st.DataObject, ack: str
) -> None:
    proto, broker = server(ack), Broker()
    running: dict[int, object] = {}
    replied: set[int] = set()
    next_tag = 1
    for _ in range(data.draw(st.integers(1, 40))):
        step = data.draw(st.sampled_from(["deliver", "answer", "flush", "unanswerable"]))
        if step == "unanswerable":
            broker.deliver(next_tag)
            apply_all(broker, proto.receive(unanswerable(next_tag)).actions)
            next_tag += 1
        elif step == "deliver" or (not running and step == "answer"):
            broker.deliver(next_tag)
            received = proto.receive(request(next_tag))
            apply_all(broker, received.actions)
            running[next_tag] = received.invoke
            next_tag += 1
        elif step == "answer":
            tag = data.draw(st.sampled_from(sorted(running)))
            invoke = running.pop(tag)
            proto.finish(invoke, call_handler(invoke, wall_clock))  # type: ignore[arg-type]
            replied.add(tag)
        else:
            for ack_action in proto.flush_acks():
                broker.apply(ack_action)
            if ack == "late":
                assert set(broker.acked) <= replied  # never acked before its reply
    for _tag, invoke in sorted(running.items()):
        proto.finish(invoke, call_handler(invoke, wall_clock))  # type: ignore[arg-type]
    for ack_action in proto.flush_acks():
        broker.apply(ack_action)
    assert broker.outstanding == set()
    settled = sorted(broker.acked + broker.rejected)
    assert settled == list(range(1, next_tag))  # each exactly once
