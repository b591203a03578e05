"""The fenced aiormq internals (`aio/_rmq_compat.py`): they exist in the installed versions,
the tap takes amqprpc's own deliveries, returns and blocked notices off aiormq's path, and when
the internals differ the link still works, through aiormq's public API (with publisher
confirms, so that returns still end calls as Unroutable), after one WARNING naming the versions.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import aiormq
import pytest

import amqprpc
import amqprpc.aio
import amqprpc.aio._rmq_compat as rmq_compat
from amqprpc._versions import outside


class Echo:
    def echo(self, arg: object) -> object:
        return arg


def test_the_installed_aiormq_is_the_tested_one() -> None:
    assert outside(rmq_compat.SUPPORTED) == []


async def test_aiormq_internals_exist_and_the_tap_reads_our_deliveries(
    broker_url: str, queue_name: str
) -> None:
    connection = await aiormq.connect(broker_url)
    try:
        assert rmq_compat.missing_internals(connection) == []
        server = await amqprpc.aio.server_codec(connection, queue_name, amqprpc.Json)
        server.register(Echo())
        await server.started()
        client = await amqprpc.aio.client_codec(connection, queue_name, amqprpc.Json)
        tap = rmq_compat.Tap.of(connection)
        receiver = rmq_compat._task_local(connection, "_reader_task", "frame_receiver")
        assert type(receiver) is rmq_compat._TappedReceiver
        assert await client.call("Echo.Echo", {"n": 1}) == {"n": 1}
        # Both consumers' deliveries reach their links through the tap: the request and the
        # reply never went through aiormq's channels (no message waits in their frame queues).
        assert len(tap._consumers) == 2
        with pytest.raises(amqprpc.Unroutable):
            other = await amqprpc.aio.client_codec(connection, queue_name + "-none", amqprpc.Json)
            try:
                await other.call("Echo.Echo", 1, timeout=5)
            finally:
                await other.close()
        await client.close()
        await server.close()
        assert tap._consumers == {} and tap._returns == {}  # forgotten with their channels
    finally:
        await connection.close()


async def test_aiormq_falls_back_to_the_public_api_with_a_warning(
    broker_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(rmq_compat, "SUPPORTED", (("aiormq", (0, 1), (0, 2)),))
    monkeypatch.setattr(rmq_compat, "_warned", False)
    connection = await aiormq.connect(broker_url)
    try:
        with caplog.at_level(logging.WARNING, logger="amqprpc.aio._rmq_compat"):
            server = await amqprpc.aio.server_codec(connection, queue_name, amqprpc.Json)
            server.register(Echo())
            client = await amqprpc.aio.client_codec(connection, queue_name, amqprpc.Json)
            lost = await amqprpc.aio.client_codec(connection, queue_name + "-none", amqprpc.Json)
        assert await client.call("Echo.Echo", [1, "two"]) == [1, "two"]
        with pytest.raises(amqprpc.Unroutable):  # reported by aiormq, with publisher confirms
            await lost.call("Echo.Echo", 1, timeout=5)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once, not per channel
        assert f"aiormq {importlib.metadata.version('aiormq')}" in warnings[0].getMessage()
        assert not hasattr(connection, "_amqprpc_tap")
        await lost.close()
        await client.close()
        await server.close()
    finally:
        await connection.close()
