"""`amqprpc doctor` on the shared broker (RabbitMQ 3.10) and on a node that denies transient
non-exclusive queues as RabbitMQ 4.3 does: the broker's facts, a queue's kind, depth and
consumers, and the ping; it never creates or changes the queue it is asked about."""

from __future__ import annotations

from pathlib import Path

import pika
import pika.exceptions
import pytest

import amqprpc.sync._compat as sync_compat
from tests.brokers import PrivateBroker
from tests.integration.raw import blocking, queue_counts

from .helpers import Served, run

pytestmark = pytest.mark.broker


def doctor(url: str, *args: str) -> tuple[int, list[str]]:
    result = run("doctor", *args, "--url", url, "--timeout", "1")
    assert result.stderr == ""
    return result.returncode, result.stdout.splitlines()


def test_pikas_server_properties_are_where_compat_looks(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        properties = sync_compat.server_properties(connection)
    finally:
        connection.close()
    assert properties is not None and properties["product"] == "RabbitMQ"


def test_the_broker_alone(url: str) -> None:
    code, lines = doctor(url)
    assert code == 0
    assert lines[0].startswith("ok   broker at 127.0.0.1:5672: RabbitMQ 3.10.")
    assert lines[1].startswith("ok   transient non-exclusive queues are permitted")
    assert len(lines) == 2


def test_a_durable_queue_with_messages_and_no_server(url: str, queue: str) -> None:
    with blocking(url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        for _ in range(3):
            channel.basic_publish("", queue, b"{}")
    code, lines = doctor(url, queue)
    assert code == 1
    assert f"ok   queue {queue!r}: durable classic, 3 ready, 0 consumers" in lines
    assert lines[-1] == f"FAIL ping {queue!r}: no server consumes the queue (no request sent)"
    # Unchanged: still durable (a transient declaration is refused), its messages still there.
    assert queue_counts(url, queue) == (3, 0)
    with blocking(url) as connection, pytest.raises(pika.exceptions.ChannelClosedByBroker):
        connection.channel().queue_declare(queue, durable=False)


def test_a_quorum_queue(url: str, queue: str) -> None:
    with blocking(url) as connection:
        connection.channel().queue_declare(
            queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
    code, lines = doctor(url, queue)
    assert f"ok   queue {queue!r}: durable quorum, 0 ready, 0 consumers" in lines
    assert code == 1  # no server: the ping fails


def test_a_queue_with_other_arguments_is_named_as_far_as_known(url: str, queue: str) -> None:
    with blocking(url) as connection:
        connection.channel().queue_declare(queue, durable=True, arguments={"x-message-ttl": 60000})
    _, lines = doctor(url, queue)
    assert any(line.startswith(f"ok   queue {queue!r}: durable") for line in lines), lines
    assert any("'x-message-ttl'" in line and line.startswith("warn") for line in lines), lines


def test_a_missing_queue_fails_and_is_not_created(url: str, queue: str) -> None:
    code, lines = doctor(url, queue)
    assert code == 1
    assert lines[-1].startswith(f"FAIL queue {queue!r} does not exist")
    assert not any("ping" in line for line in lines)
    with blocking(url) as connection, pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        connection.channel().queue_declare(queue, passive=True)
    assert exc.value.reply_code == 404


def test_a_consumer_that_never_answers_fails_the_ping(url: str, queue: str) -> None:
    with blocking(url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        channel.basic_consume(queue, lambda *delivery: None)  # takes requests, answers none
        code, lines = doctor(url, queue)
    assert code == 1
    assert f"ok   queue {queue!r}: transient classic, 0 ready, 1 consumer" in lines
    assert lines[-1] == f"FAIL ping {queue!r}: no server answered within 1 s"


@pytest.mark.parametrize("server", [[], ["--async"]], ids=["sync", "async"])
def test_a_served_queue_answers_the_ping(
    url: str, queue: str, app_dir: Path, server: list[str]
) -> None:
    with Served("cliapp:Arith", "--queue", queue, "--url", url, *server, cwd=app_dir) as served:
        code, lines = doctor(url, queue)
        assert served.stop()[0] == 0
    assert code == 0, lines
    assert f"ok   queue {queue!r}: transient classic, 0 ready, 1 consumer" in lines
    assert lines[-1].startswith(f"ok   ping {queue!r}: a server answered in ")
    assert "rpc: can't find service AmqprpcDoctor.Ping" in lines[-1]


def test_no_broker_fails(free_port: int) -> None:
    code, lines = doctor(f"amqp://guest:guest@127.0.0.1:{free_port}/")
    assert code == 1
    assert lines == [f"FAIL connect: cannot connect: 127.0.0.1:{free_port}: connection refused"]


@pytest.mark.rabbitmq4
def test_a_broker_that_denies_transient_queues(rabbitmq43: PrivateBroker) -> None:
    code, lines = doctor(rabbitmq43.url)
    assert lines[0].startswith("ok   broker at 127.0.0.1:")
    assert " RabbitMQ 4." in lines[0]
    assert lines[1].startswith("warn transient non-exclusive queues are denied")
    assert code == 0  # a warning: durable request queues work there
