"""The in-memory broker's records: a queue, its messages and its consumers.

Plain records; the broker (`_broker.py`) owns every change to them.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._events import Publish

if TYPE_CHECKING:
    from ._links import LinkBase

__all__ = ["Consumer", "Message", "Queue"]


@dataclass
class Message:
    """A message in a queue, or delivered and not yet settled."""

    publish: Publish
    expires: float | None
    publisher: LinkBase | None = None
    redelivered: bool = False


@dataclass
class Consumer:
    """A consumer of a queue: its link, tag and acking mode."""

    link: LinkBase
    tag: str
    queue: str
    no_ack: bool


@dataclass
class Queue:
    """A queue: how it was declared, its messages and its consumers."""

    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    owner: object | None  # the connection (or lone link) an exclusive queue belongs to
    arguments: tuple[tuple[str, str], ...] = ()
    messages: collections.deque[Message] = field(default_factory=collections.deque)
    consumers: list[Consumer] = field(default_factory=list)
    turn: int = 0
