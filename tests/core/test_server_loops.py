"""ServerProtocol never answers into its own queue and never runs a reply (PROTOCOL.md 12.2):
one hostile message runs a handler at most once, in both ack modes."""

from __future__ import annotations

import logging

import pytest

from amqprpc._server import _rate_limited
from amqprpc.protocol import Ack, Delivery, Properties, Publish, Reject

from .helpers import REQUEST_QUEUE, run_invoke
from .server_helpers import request, server


def marked(body: bytes = b"1", *, tag: int = 1, reply_queue: str = "elsewhere") -> Delivery:
    properties = Properties(
        headers={"amqprpc-reply": "1"}, reply_to="Test.Echo", correlation_id=reply_queue,
        message_id="0",
    )  # fmt: skip
    return Delivery(properties=properties, body=body, delivery_tag=tag)


@pytest.mark.parametrize("ack", ["late", "early"])
def test_a_request_naming_our_own_queue_is_never_run(ack: str) -> None:
    proto = server(ack=ack, queues=[REQUEST_QUEUE])
    received = proto.receive(request(b"1", reply_queue=REQUEST_QUEUE, tag=3))
    assert received.invoke is None
    settle = Reject(delivery_tag=3) if ack == "late" else Ack(delivery_tag=3)
    assert received.actions == (settle,)  # settled; no reply published into our queue
    assert proto.stats.loops == 1
    assert proto.in_flight == 0


@pytest.mark.parametrize("ack", ["late", "early"])
def test_a_marked_reply_is_never_run(ack: str) -> None:
    proto = server(ack=ack, queues=[REQUEST_QUEUE])
    received = proto.receive(marked(tag=4))
    assert received.invoke is None
    assert not any(isinstance(action, Publish) for action in received.actions)
    assert proto.stats.replies == 1


def test_every_reply_carries_the_mark_so_the_next_server_refuses_it() -> None:
    # Server A answers a request whose reply queue is server B's request queue: B gets A's
    # reply as a request, and must not run it (the A-to-B loop).
    a = server(queues=["queue-a"])
    b = server(queues=["queue-b"])
    received = a.receive(request(b'"x"', reply_queue="queue-b"))
    assert received.invoke is not None
    reply = a.finish(received.invoke, run_invoke(received.invoke))[0]
    assert isinstance(reply, Publish) and reply.routing_key == "queue-b"
    into_b = Delivery(properties=reply.properties, body=reply.body, delivery_tag=1)
    assert b.receive(into_b).invoke is None
    assert b.stats.replies == 1
    error_reply = a.receive(request(b"{", reply_queue="queue-b", tag=2)).actions[0]
    assert isinstance(error_reply, Publish) and error_reply.properties.headers
    assert error_reply.properties.headers["amqprpc-reply"] == "1"


def test_the_server_keeps_serving_after_refusing(caplog: pytest.LogCaptureFixture) -> None:
    proto = server(queues=[REQUEST_QUEUE])
    with caplog.at_level(logging.WARNING, logger="amqprpc._server"):
        for tag in range(1, 1001):
            proto.receive(request(b"1", reply_queue=REQUEST_QUEUE, tag=tag))
    assert proto.stats.loops == 1000
    assert len(caplog.records) == 4  # the 1st, 10th, 100th and 1000th: rate-limited
    assert "would loop" in caplog.records[0].getMessage()
    received = proto.receive(request(b'"ok"', tag=1001))
    assert received.invoke is not None and run_invoke(received.invoke).value == "ok"


def test_rate_limit_logs_powers_of_ten() -> None:
    assert [n for n in range(1, 2001) if _rate_limited(n)] == [1, 10, 100, 1000]
