"""ServerProtocol: acks after the reply (late) or on receipt (early), and requests that cannot
be answered."""

from __future__ import annotations

import pytest

from amqprpc import UsageError
from amqprpc._server import DeliveryState
from amqprpc.protocol import Ack, Properties, Publish, Reject, call_handler
from tests.core.helpers import wall_clock

from .helpers import REPLY_QUEUE, LoopbackPair
from .server_helpers import make_registry, request, server

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
    actions = proto.finish(invoke, call_handler(invoke, wall_clock))
    assert [type(a) for a in actions] == [Publish, Ack]
    reply, ack = actions
    assert ack == Ack(delivery_tag=5)
    assert reply == Publish(
        routing_key=REPLY_QUEUE,
        properties=Properties(
            headers={"amqprpc-reply": "1"}, reply_to="Test.Mul", correlation_id=REPLY_QUEUE,
            message_id="0",
        ),
        body=b"42",
    )
    assert proto.in_flight == 0
    assert proto.states() == {}


def test_early_ack_on_receipt_and_reply_alone():
    proto = server(ack="early")
    received = proto.receive(request(b'{"A":6,"B":7}', method="Test.Mul", tag=9))
    assert received.actions == (Ack(delivery_tag=9),)
    assert received.invoke is not None
    actions = proto.finish(received.invoke, call_handler(received.invoke, wall_clock))
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
    actions = proto.finish(after.invoke, call_handler(after.invoke, wall_clock))
    assert actions[0].body == b'"still here"'
    assert actions[1] == Ack(delivery_tag=2)


def test_request_without_correlation_id_under_early_ack_is_only_acked():
    proto = server(ack="early")
    received = proto.receive(request(reply_queue=None, tag=3))
    assert received.actions == (Ack(delivery_tag=3),)
    assert received.invoke is None
