"""Fault injection for the in-memory broker: what happens to the next replies and requests.

Owns the list of armed faults and which message each one takes. On this wire (PROTOCOL.md)
`correlation_id` names the caller's reply queue and `reply_to` the method: a reply is a
message published to the queue its `correlation_id` names (what every amqprpc or Go server
sends back), a request any other message with both. The broker asks `on_reply` and
`on_request` as it routes each such message, and does what they answer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .._envelope import is_reply_to, is_request_to
from .._events import Publish

__all__ = ["Faults", "ReplyFate", "RequestFate"]


@dataclass
class _Armed:
    what: str
    count: int | None  # None: every one from now on
    seconds: float = 0.0
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyFate:
    """What becomes of one reply: dropped, delivered late, or delivered `copies` times."""

    drop: bool = False
    delay: float = 0.0
    copies: int = 1


@dataclass(frozen=True, slots=True)
class RequestFate:
    """Whose connection goes when one request is routed or delivered."""

    cut_client: bool = False
    cut_server: bool = False


def is_reply(publish: Publish) -> bool:
    """Whether `publish` is an RPC reply (the core's `is_reply_to`, on the default exchange)."""
    return publish.exchange == "" and is_reply_to(publish.routing_key, publish.properties)


def is_request(publish: Publish) -> bool:
    """Whether `publish` is an RPC request (the core's `is_request_to`)."""
    return is_request_to(publish.routing_key, publish.properties)


class Faults:
    """The faults armed on a MemoryBroker (`broker.faults`); each applies to the next
    `count` matching messages (None: to all of them until `clear()`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def drop_replies(self, count: int | None = 1) -> None:
        """Lose the next `count` replies, as a server that died after acking would."""
        self._arm(_Armed("drop", count))

    def delay_replies(self, seconds: float, count: int | None = 1) -> None:
        """Deliver the next `count` replies `seconds` late (on the broker's clock)."""
        if seconds <= 0:
            raise ValueError(f"a delay must be positive, not {seconds}")
        self._arm(_Armed("delay", count, seconds))

    def duplicate_replies(self, count: int | None = 1) -> None:
        """Deliver the next `count` replies twice."""
        self._arm(_Armed("duplicate", count))

    def cut_client_on_request(self, count: int | None = 1, queue: str | None = None) -> None:
        """Drop the caller's connection as soon as its next request (to `queue`, or any) is
        queued: that call is in flight when the connection goes."""
        self._arm(_Armed("cut_client", count, queue=queue))

    def cut_server_on_request(self, count: int | None = 1, queue: str | None = None) -> None:
        """Drop the connection of the server that receives the next request (from `queue`, or
        any), as if its process crashed holding it: the request goes back to the queue for
        another server (with late acks)."""
        self._arm(_Armed("cut_server", count, queue=queue))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()

    def on_reply(self) -> ReplyFate:
        """The fate of the reply being routed now."""
        fate = ReplyFate()
        for armed in self._take(("drop", "delay", "duplicate"), None):
            if armed.what == "drop":
                fate = ReplyFate(drop=True)
            elif armed.what == "delay":
                fate = ReplyFate(delay=fate.delay + armed.seconds, copies=fate.copies)
            else:
                fate = ReplyFate(delay=fate.delay, copies=fate.copies + 1)
            if fate.drop:
                break
        return fate

    def on_request(self, stage: str, queue: str) -> bool:
        """Whether to cut the connection at this `stage` ("cut_client" when a request is
        queued, "cut_server" when one is delivered) of a request to `queue`."""
        return bool(self._take((stage,), queue))

    def _arm(self, armed: _Armed) -> None:
        if armed.count is not None and armed.count < 1:
            raise ValueError(f"count must be at least 1, or None for all, not {armed.count}")
        with self._lock:
            self._armed.append(armed)

    def _take(self, kinds: tuple[str, ...], queue: str | None) -> list[_Armed]:
        taken = []
        with self._lock:
            for armed in list(self._armed):
                if armed.what not in kinds or (armed.queue not in (None, queue)):
                    continue
                taken.append(armed)
                if armed.count is not None:
                    armed.count -= 1
                    if armed.count == 0:
                        self._armed.remove(armed)
        return taken
