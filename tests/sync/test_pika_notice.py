"""pika 1.5 warns from BlockingConnection's constructor that it goes in pika 2.0 (a
DeprecationWarning, an error under `filterwarnings = error`). The connections the sync codecs
open themselves never pass that notice on; a user's own BlockingConnection still shows it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync

pytestmark = pytest.mark.broker

NOTICE = "BlockingConnection is deprecated and will be removed in Pika 2.0. Use pika.Connection."


@pytest.fixture
def pika_1_5(queue_name: str) -> Iterator[None]:
    """BlockingConnection as pika 1.5 makes it: warning from its constructor. (Set up after,
    and undone before, the queue fixture, whose own connections are not under test.)"""
    original = pika.BlockingConnection.__init__

    def warning_init(self: Any, *args: Any, **kwargs: Any) -> None:
        warnings.warn(NOTICE, DeprecationWarning, stacklevel=2)
        original(self, *args, **kwargs)

    pika.BlockingConnection.__init__ = warning_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        pika.BlockingConnection.__init__ = original  # type: ignore[method-assign]


def test_codecs_that_connect_themselves_pass_no_notice_on(
    pika_1_5: None, broker_url: str, queue_name: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that reaches us fails the test
        server = amqprpc.sync.server_codec(broker_url, queue_name, amqprpc.Json)
        server.register(lambda arg: arg, name="Echo.Echo")
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as client:
            with pytest.raises(amqprpc.RPCTimeout):  # nobody serves yet: it still connected
                client.call("Echo.Echo", 1, timeout=0.3)
        server.close()


def test_a_users_own_connection_still_warns(pika_1_5: None, broker_url: str) -> None:
    with pytest.warns(DeprecationWarning, match="Pika 2.0"):
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    connection.close()
