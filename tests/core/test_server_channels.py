"""A server that lost its channel and consumes a new one: delivery tags start again at 1, so
nothing owed on the old channel may be acked on the new one (a wrong ack settles another
request, or closes the channel with 406). Handlers still running still answer their callers."""

from __future__ import annotations

import pytest

from amqprpc import Json, UsageError
from amqprpc._serving import Backoff
from amqprpc._urls import address, urls_of
from amqprpc.protocol import Ack, Delivery, Outcome, Properties, Publish, Reject, ServerProtocol

from .server_helpers import make_registry, request


def server() -> ServerProtocol:
    return ServerProtocol(registry=make_registry(), formatter=Json())


def delivery(tag: int) -> Delivery:
    return request(b'"x"', call_id=str(tag), tag=tag)


def test_a_handler_of_a_lost_channel_replies_but_acks_nothing_on_the_new_one() -> None:
    proto = server()
    old = proto.receive(delivery(1)).invoke
    assert old is not None
    assert proto.channel_lost() == 1
    assert proto.in_flight == 0
    new = proto.receive(delivery(1)).invoke  # the same tag, on the new channel
    assert new is not None
    actions = proto.finish(old, Outcome(value="old"))
    assert [type(a) for a in actions] == [Publish]  # answered, not acked
    assert actions[0].properties.message_id == "1"
    assert proto.flush_acks() == ()
    assert proto.in_flight == 1  # the new delivery is untouched
    proto.finish(new, Outcome(value="new"))
    assert proto.flush_acks() == (Ack(delivery_tag=1),)


def test_what_was_owed_on_the_lost_channel_is_forgotten() -> None:
    proto = server()
    done = proto.receive(delivery(1)).invoke
    assert done is not None
    proto.finish(done, Outcome(value=1))  # an ack owed, not yet flushed
    proto.receive(Delivery(properties=Properties(), body=b"", delivery_tag=2))  # a reject owed
    assert proto.channel_lost() == 0
    assert proto.flush_acks() == ()


def test_stale_handlers_of_a_lost_channel_send_nothing() -> None:
    proto = server()
    old = proto.receive(delivery(3)).invoke
    assert old is not None
    proto.channel_lost()
    assert proto.finish(old, Outcome(stale=True)) == ()
    assert proto.stats.expired == 0  # the request went back to the queue: not expired here


def test_errors_of_a_lost_channel_are_still_answered() -> None:
    proto = server()
    old = proto.receive(delivery(4)).invoke
    assert old is not None
    proto.channel_lost()
    (reply,) = proto.finish(old, Outcome(error=ValueError("no")))
    assert isinstance(reply, Publish) and reply.properties.headers["error"] == "no"
    assert not any(isinstance(a, (Ack, Reject)) for a in proto.flush_acks())


def test_backoff_doubles_with_jitter_up_to_its_limit_and_resets() -> None:
    backoff = Backoff(first=1.0, most=4.0)
    delays = [backoff.delay() for _ in range(5)]
    for delay, nominal in zip(delays, [1, 2, 4, 4, 4], strict=True):
        assert nominal / 2 <= delay <= nominal
    backoff.reset()
    assert backoff.delay() <= 1.0


def test_urls_are_checked_and_named_without_passwords() -> None:
    assert urls_of("amqp://u:secret@h:1/") == ["amqp://u:secret@h:1/"]
    assert urls_of(["amqp://a", "amqps://b"]) == ["amqp://a", "amqps://b"]
    assert urls_of(object()) is None  # a connection, not URLs
    assert address("amqp://u:secret@host/") == "host:5672"
    assert address("amqps://u:secret@host/") == "host:5671"
    for bad in ([], ["http://x"], ["amqp://h:notaport/"], [b"amqp://h"]):
        with pytest.raises(UsageError) as info:
            urls_of(bad)
        assert "secret" not in str(info.value)


def test_a_loss_after_a_stable_connection_is_retried_at_once_a_quick_one_waits() -> None:
    backoff = Backoff(first=1.0, most=8.0, stable=10.0, now=100.0)
    assert backoff.lost(now=111.0) == 0.0  # it had lasted 11 s
    backoff.connected(now=112.0)
    waits = []
    for at in (112.5, 113.5, 115.0):  # each connection fails right after it is made
        waits.append(backoff.lost(now=at))
        backoff.connected(now=at)
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0
    assert backoff.lost(now=130.0) == 0.0  # stable again: from the start
    assert backoff.delay() <= 1.0
