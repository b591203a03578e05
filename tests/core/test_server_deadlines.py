"""Deadline-aware serving (PROTOCOL.md 12.1): a request whose caller's deadline has passed is
settled without a reply and counted; its handler's own calls inherit what is left."""

from __future__ import annotations

import pytest

import amqprpc
from amqprpc import UsageError
from amqprpc._client import client_protocol
from amqprpc._server import call_handler
from amqprpc.protocol import Ack, Delivery, Invoke, Properties, Publish

from .helpers import REPLY_QUEUE, WALL_NOW, wall_clock
from .server_helpers import make_registry, server


def with_deadline(value: object, *, tag: int = 1, method: str = "Test.Echo") -> Delivery:
    properties = Properties(
        headers={"amqprpc-deadline": value}, reply_to=method, correlation_id=REPLY_QUEUE,
        message_id="0",
    )  # fmt: skip
    return Delivery(properties=properties, body=b'"x"', delivery_tag=tag)


def ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def test_a_request_past_its_deadline_and_the_skew_is_settled_without_a_reply() -> None:
    proto = server()  # late acks; the default skew of 1 s
    received = proto.receive(with_deadline(ms(WALL_NOW - 1.5), tag=7))
    assert received.invoke is not None
    outcome = call_handler(received.invoke, wall_clock)
    assert outcome.stale
    assert proto.finish(received.invoke, outcome) == (Ack(delivery_tag=7),)
    assert proto.stats.expired == 1
    assert proto.in_flight == 0


def test_within_the_skew_it_is_served() -> None:
    proto = server()
    received = proto.receive(with_deadline(ms(WALL_NOW - 0.5)))
    assert received.invoke is not None
    outcome = call_handler(received.invoke, wall_clock)
    assert outcome.value == "x"
    reply, _ = proto.finish(received.invoke, outcome)
    assert isinstance(reply, Publish)
    assert proto.stats.expired == 0


def test_the_skew_is_configurable() -> None:
    proto = server(deadline_skew=0)
    received = proto.receive(with_deadline(ms(WALL_NOW - 0.01)))
    assert received.invoke is not None and call_handler(received.invoke, wall_clock).stale
    with pytest.raises(UsageError):
        server(deadline_skew=-1)


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5", "١٢٣", "9" * 40, 12345, None])
def test_a_malformed_deadline_is_ignored_and_counted(value: object) -> None:
    proto = server()
    received = proto.receive(with_deadline(value))
    assert received.invoke is not None
    assert received.invoke.stale_after is None
    assert call_handler(received.invoke, wall_clock).value == "x"
    assert proto.stats.bad_deadline == 1


def test_without_the_header_requests_are_served_as_before() -> None:
    proto = server()
    properties = Properties(reply_to="Test.Echo", correlation_id=REPLY_QUEUE, message_id="0")
    received = proto.receive(Delivery(properties=properties, body=b"1", delivery_tag=1))
    assert received.invoke is not None and received.invoke.stale_after is None
    assert proto.cancel_after(received.invoke, WALL_NOW) is None


def test_cancel_after_is_the_time_to_the_deadline_plus_skew() -> None:
    proto = server(deadline_skew=0.5)
    received = proto.receive(with_deadline(ms(WALL_NOW + 2)))
    assert received.invoke is not None
    assert proto.cancel_after(received.invoke, WALL_NOW) == pytest.approx(2.5)
    assert proto.cancel_after(received.invoke, WALL_NOW + 10) == 0.0


def test_a_cancelled_handler_is_counted_and_not_answered() -> None:
    proto = server()
    received = proto.receive(with_deadline(ms(WALL_NOW + 2), tag=2))
    assert received.invoke is not None
    outcome = amqprpc.protocol.Outcome(stale=True, cancelled=True)
    assert proto.finish(received.invoke, outcome) == (Ack(delivery_tag=2),)
    assert (proto.stats.cancelled, proto.stats.expired) == (1, 0)


# -- the client side: the header, and the inherited budget --------------------------------------


def test_requests_carry_their_absolute_deadline_in_unix_milliseconds() -> None:
    proto = client_protocol("q", amqprpc.Json, unique="u", timeout=5)
    started = proto.start_call("S.M", 1, now=100.0, token=None, wall=WALL_NOW)
    assert started.publish.properties.headers == {"amqprpc-deadline": ms(WALL_NOW + 5)}
    assert started.publish.properties.expiration == "5000"
    bare = proto.start_call("S.M", 1, now=100.0, token=None)  # no wall clock: no header
    assert bare.publish.properties.headers is None


def test_a_call_inherits_the_smaller_budget() -> None:
    proto = client_protocol("q", amqprpc.Json, unique="u", timeout=60)
    started = proto.start_call("S.M", 1, now=10.0, token=None, wall=WALL_NOW,
                               inherited=WALL_NOW + 1.0)  # fmt: skip
    assert started.deadline == pytest.approx(11.0)
    assert started.publish.properties.expiration == "1000"
    assert started.publish.properties.headers == {"amqprpc-deadline": ms(WALL_NOW + 1)}
    roomy = proto.start_call("S.M", 1, now=10.0, timeout=2, token=None, wall=WALL_NOW,
                             inherited=WALL_NOW + 30)  # fmt: skip
    assert roomy.deadline == pytest.approx(12.0)  # its own timeout is the smaller


def test_a_call_with_no_budget_left_fails_before_publishing() -> None:
    proto = client_protocol("q", amqprpc.Json, unique="u")
    with pytest.raises(amqprpc.RPCTimeout, match="past its deadline"):
        proto.start_call("S.M", 1, now=0.0, token=None, wall=WALL_NOW, inherited=WALL_NOW)
    assert len(proto.pending) == 0


def test_handlers_see_their_request_deadline_and_nothing_leaks() -> None:
    seen: list[object] = []
    registry = make_registry()
    registry.register(lambda arg: seen.append(amqprpc.request_deadline()), name="Peek")
    proto = server()
    proto.registry = registry
    received = proto.receive(with_deadline(ms(WALL_NOW + 3), method="Peek"))
    assert isinstance(received.invoke, Invoke)
    call_handler(received.invoke, wall_clock)
    assert seen == [pytest.approx(WALL_NOW + 3)]
    assert amqprpc.request_deadline() is None  # reset once the handler returned
