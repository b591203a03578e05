"""A request that keeps coming back (it crashed servers) is answered with an error instead
of being run again, once its delivery count passes max_redeliveries."""

from __future__ import annotations

import pytest

from amqprpc import UsageError
from amqprpc.protocol import Delivery, Properties, Publish

from .helpers import REPLY_QUEUE
from .server_helpers import error_of, server


def delivery(count: object = None, *, redelivered: bool = False) -> Delivery:
    headers = None if count is None else {"x-delivery-count": count}
    properties = Properties(
        headers=headers, reply_to="Test.Echo", correlation_id=REPLY_QUEUE, message_id="0"
    )
    return Delivery(properties=properties, body=b'"x"', delivery_tag=1, redelivered=redelivered)


@pytest.mark.parametrize(("count", "runs"), [(1, True), (5, True), (6, False), (40, False)])
def test_quorum_delivery_counts_above_the_limit_are_answered_not_run(
    count: int, runs: bool
) -> None:
    proto = server()  # max_redeliveries=5
    received = proto.receive(delivery(count, redelivered=True))
    assert (received.invoke is not None) is runs
    if not runs:
        reply = received.actions[0]
        assert isinstance(reply, Publish)
        text, kind = error_of(reply)
        assert kind == "TooManyDeliveries"
        assert f"after {count} deliveries" in str(text)
        assert proto.stats.poison == 1
        assert proto.in_flight == 0


def test_classic_queues_flag_redeliveries_only() -> None:
    assert server().receive(delivery(redelivered=True)).invoke is not None  # a retry is fine
    strict = server(max_redeliveries=0)
    received = strict.receive(delivery(redelivered=True))
    assert received.invoke is None and strict.stats.poison == 1
    assert strict.receive(delivery()).invoke is not None  # a first delivery always runs


@pytest.mark.parametrize("count", [True, -1, "7", 1.5])
def test_odd_delivery_counts_are_ignored(count: object) -> None:
    proto = server(max_redeliveries=0)
    assert proto.receive(delivery(count)).invoke is not None


def test_the_limit_is_checked() -> None:
    with pytest.raises(UsageError):
        server(max_redeliveries=-1)
