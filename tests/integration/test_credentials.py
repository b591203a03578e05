"""Passwords never reach exception texts or log records (STYLE.md section 5: never log
credentials), for the sync API's URL clients and servers, whose URLs carry the password."""

from __future__ import annotations

import logging
import secrets
import socket
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.brokers import PrivateBroker

pytestmark = pytest.mark.slow  # the private broker takes ~9 s to start


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])  # nothing listens there once it is closed


def call_through_client(target: Any) -> None:
    with amqprpc.sync.client_codec(target, f"q-{uuid.uuid4().hex}", amqprpc.Json) as codec:
        codec.call("Arith.Mul", {"A": 1, "B": 1}, timeout=10)


def serve(target: Any) -> None:
    amqprpc.sync.server_codec(target, f"q-{uuid.uuid4().hex}", amqprpc.Json).close()


def everything_said(exc: BaseException) -> str:
    """str, repr and the whole printed traceback, chained causes included."""
    return f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}"


def test_wrong_password_or_unreachable_broker_never_shows_the_password(
    private_broker: PrivateBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{secrets.token_hex(8)}"
    user, right, port = private_broker.user, private_broker.password, private_broker.port
    down = closed_port()
    login = f"403 connecting to .*: access refused for user {user!r}"
    attempts: list[tuple[str, type[amqprpc.RPCError], str]] = [  # URL, what the error says
        (f"amqp://{user}:{wrong}@127.0.0.1:{port}/", amqprpc.BrokerError, login),
        (private_broker.tls_url.replace(right, wrong) + "?ssl_options="
         + repr({"ca_certs": str(private_broker.ca_file)}), amqprpc.BrokerError, login),
        (f"amqp://{user}:{right}@127.0.0.1:{port}/nope", amqprpc.BrokerError,
         f"530 connecting to .*: virtual host 'nope' does not exist, or user {user!r}"),
        (f"amqp://{user}:{right}@127.0.0.1:{down}/", amqprpc.ConnectionLost,
         f"127.0.0.1:{down}: connection refused"),
    ]  # fmt: skip
    said: list[str] = []
    for url, error, expected in attempts:
        for target in (url, pika.URLParameters(url)):
            attempt: Callable[[Any], None]
            for attempt in (call_through_client, serve):
                with pytest.raises(error, match=expected) as err:
                    attempt(target)
                said.append(everything_said(err.value))
    # An unquoted '#' in a password: urllib reads the rest as the port, and its error quotes it.
    with pytest.raises(amqprpc.UsageError) as usage:
        amqprpc.sync.client_codec(f"amqp://{user}:{wrong}#x@127.0.0.1:{port}/", "q", amqprpc.Json)
    said.append(everything_said(usage.value))

    for text in said:
        assert wrong not in text and right not in text, text
    assert any("connecting to 127.0.0.1" in text for text in said)  # it says where, though

    logged = [logging.Formatter().format(r) for r in caplog.records]  # with tracebacks
    assert any(r.name.startswith("pika") for r in caplog.records)  # so the check means something
    assert any(r.name.startswith("amqprpc") for r in caplog.records)
    leaks = [line for line in logged if wrong in line or right in line]
    assert not leaks, leaks[0]
