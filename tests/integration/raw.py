"""Raw pika helpers for looking at the broker from outside the library under test."""

from __future__ import annotations

import time
from collections.abc import Callable

import pika
import pika.exceptions
from pika.spec import BasicProperties


def blocking(url: str) -> pika.BlockingConnection:
    """A plain pika connection."""
    return pika.BlockingConnection(pika.URLParameters(url))


def delete_queue(url: str, name: str) -> None:
    """Delete a queue if it exists."""
    with blocking(url) as conn:
        conn.channel().queue_delete(name)


def queue_counts(url: str, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of an existing queue, by passive declare."""
    with blocking(url) as conn:
        ok = conn.channel().queue_declare(name, passive=True)
        return ok.method.message_count, ok.method.consumer_count


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll broker state (which has no event to wait on) until `predicate()` or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class RawPeer:
    """A pika channel with its own exclusive reply queue, for hand-made requests."""

    def __init__(self, url: str) -> None:
        self.conn = blocking(url)
        self.channel = self.conn.channel()
        self.reply_queue = self.channel.queue_declare("", exclusive=True).method.queue

    def publish(self, queue: str, body: bytes, properties: BasicProperties) -> None:
        """Publish a raw request to `queue`."""
        self.channel.basic_publish("", queue, body, properties)

    def get_reply(self, timeout: float = 10.0) -> tuple[BasicProperties, bytes]:
        """The next message on our reply queue (raises TimeoutError when none comes)."""
        for method, props, body in self.channel.consume(
            self.reply_queue, auto_ack=True, inactivity_timeout=timeout
        ):
            if method is None:
                break
            self.channel.cancel()
            return props, body
        raise TimeoutError("no reply")

    def close(self) -> None:
        """Close the connection."""
        if self.conn.is_open:
            self.conn.close()


def reply_headers(props: BasicProperties) -> dict[str, object]:
    """A Python server's reply headers, without the reply mark, which every reply carries
    (PROTOCOL.md section 12.2)."""
    headers = dict(props.headers or {})
    assert headers.pop("amqprpc-reply", None) == "1", props.headers
    return headers
