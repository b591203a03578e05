"""Which async link a codec gets: by the type of the connection it was given, or for a URL, on
a connection of its own through the preferred installed client library.

Imports a client library only when it is needed: an aiormq connection can only come from a
process that imported aiormq, and likewise for aioamqp, so `amqprpc.aio` works with either
one installed.
"""

from __future__ import annotations

import importlib.util
import sys

from .._errors import UsageError
from .._link import AsyncLink
from .._urls import urls_of

__all__ = ["link_for", "open_link", "url_backend"]

# For a URL, the first of these that is installed connects (aiormq is maintained; aioamqp's
# last release was in 2022).
BACKENDS = ("aiormq", "aioamqp")


def url_backend() -> str:
    """The client library a codec given a URL connects with. Raises UsageError when neither
    is installed."""
    for name in BACKENDS:
        if sys.modules.get(name) is not None or _installed(name):
            return name
    raise UsageError(
        "the async API needs a client library: pip install 'amqprpc[aiormq]' (or "
        "'amqprpc[aioamqp]')"
    )


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module that failed to import, or was blocked
        return False


async def open_link(target: object) -> AsyncLink:
    """A link on `target`: an aiormq connection, an aioamqp connection (`AmqpProtocol`), or
    any object with an `async open_async_link()` that returns an AsyncLink (an in-memory
    broker, say).

    Raises UsageError for anything else, ConnectionLost when no channel can be opened.
    """
    if "aiormq" in sys.modules:
        from ._rmq import RmqLink, is_connection

        if is_connection(target):
            return await RmqLink.open(target)
    if "aioamqp" in sys.modules:
        from ._link import AioLink, is_protocol

        if is_protocol(target):
            return await AioLink.open(target)
    opener = getattr(target, "open_async_link", None)
    if callable(opener):
        link: AsyncLink = await opener()
        return link
    raise UsageError(
        f"expected an aiormq connection (aiormq.connect()) or an aioamqp one (AmqpProtocol), "
        f"or a URL, not {target!r}"
    )


async def link_for(target: object) -> tuple[AsyncLink, list[str] | None]:
    """A link on a caller's connection (see `open_link`), or on a connection of its own to a
    URL or the first answering one of a list of them. Returns the link and the URLs (None
    for a caller's connection). Raises UsageError, ConnectionLost or BrokerError."""
    urls = urls_of(target)
    if urls is None:
        return await open_link(target), None
    if url_backend() == "aiormq":
        from ._rmq import RmqLink

        return await RmqLink.connect(urls), urls
    from ._link import AioLink

    return await AioLink.connect(urls), urls
