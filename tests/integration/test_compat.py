"""The fenced client-library internals (`aio/_compat.py`, `sync/_compat.py`): they exist in
the installed versions, and when they do not the adapters still work, through the public API,
after one WARNING that names the versions."""

from __future__ import annotations

import logging

import aioamqp
import pika
import pytest

import amqprpc
import amqprpc.aio._compat as aio_compat
import amqprpc.sync
import amqprpc.sync._compat as sync_compat
from amqprpc._versions import outside


class Echo:
    def echo(self, arg: object) -> object:
        return arg


def test_the_installed_versions_are_the_tested_ones() -> None:
    assert outside(aio_compat.SUPPORTED) == []
    assert outside(sync_compat.SUPPORTED) == []


async def test_aioamqp_internals_exist(broker_url: str) -> None:
    transport, protocol = await aioamqp.from_url(broker_url)
    try:
        assert aio_compat.missing_internals(protocol) == []
        assert aio_compat.internals_usable(protocol)
    finally:
        await protocol.close()
        transport.close()


def test_pika_internals_exist(broker_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        assert sync_compat.missing_internals(connection) == []
        assert sync_compat.FrameWriter(connection, connection.channel())._number >= 1
    finally:
        connection.close()


def test_version_outside_the_gate_is_named() -> None:
    assert outside((("pika", (0, 1), (0, 2)),)) == [f"pika {pika.__version__} (tested: >=0.1,<0.2)"]
    assert outside((("no-such-distribution", (1,), (2,)),))[0].startswith(
        "no-such-distribution missing"
    )


async def test_aio_falls_back_to_the_public_api_with_a_warning(
    broker_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(aio_compat, "SUPPORTED", (("aioamqp", (0, 1), (0, 2)),))
    monkeypatch.setattr(aio_compat, "_warned", False)
    transport, protocol = await aioamqp.from_url(broker_url)
    try:
        with caplog.at_level(logging.WARNING, logger="amqprpc.aio._compat"):
            server = await amqprpc.aio.server_codec(protocol, queue_name, amqprpc.Json)
            server.register(Echo())
            client = await amqprpc.aio.client_codec(protocol, queue_name, amqprpc.Json)
        assert await client.call("Echo.Echo", [1, "two"]) == [1, "two"]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once, not per channel
        assert f"aioamqp {aioamqp.__version__}" in warnings[0].getMessage()
        assert not getattr(protocol, "_amqprpc_frame_reader", None)
        await client.close()
        await server.close()
    finally:
        await protocol.close()
        transport.close()


def test_sync_leaves_pika_alone_with_a_warning(
    broker_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(sync_compat, "SUPPORTED", (("pika", (0, 1), (0, 2)),))
    monkeypatch.setattr(sync_compat, "_warned", False)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        with caplog.at_level(logging.WARNING, logger="amqprpc.sync._compat"):
            server = amqprpc.sync.server_codec(connection, queue_name, amqprpc.Json)
            client = amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert f"pika {pika.__version__}" in warnings[0].getMessage()
        assert not getattr(connection._impl, "_amqprpc_salvages_headers", False)
        assert client._link._writer is None  # type: ignore[attr-defined]
        with pytest.raises(amqprpc.RPCTimeout):  # nobody serves yet: the call still works
            client.call("Echo.Echo", 1, timeout=0.2)
        client.close()
        server.close()
    finally:
        connection.close()
