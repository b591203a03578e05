"""The sync API's factories check a URL before pika reads it: amqp:// or amqps:// with a
numeric port, else UsageError naming it without its password (pika took "foo" with an
IndexError, and "http://" as amqp://)."""

from __future__ import annotations

import pytest

import amqprpc
import amqprpc.sync

BAD = ["foo", "http://user:secret@127.0.0.1/", "amqp://user:secret@127.0.0.1:x/", ""]


@pytest.mark.parametrize("url", BAD)
def test_the_clients_refuse_a_url_that_is_not_amqp(url: str) -> None:
    with pytest.raises(amqprpc.UsageError, match="not an AMQP URL") as caught:
        amqprpc.sync.client_codec(url, "q", amqprpc.Json)
    assert "secret" not in str(caught.value)
    with pytest.raises(amqprpc.UsageError, match="not an AMQP URL"):
        amqprpc.sync.client_codec([url], "q", amqprpc.Json)


@pytest.mark.parametrize("url", BAD)
def test_the_server_refuses_a_url_that_is_not_amqp(url: str) -> None:
    with pytest.raises(amqprpc.UsageError, match="not an AMQP URL") as caught:
        amqprpc.sync.server_codec(url, "q", amqprpc.Json)
    assert "secret" not in str(caught.value)
