"""The sync API, on pika: `client_codec(...)`, `server_codec(...)`.

Needs the `pika` extra: `pip install amqprpc[pika]`.
"""

from __future__ import annotations

try:
    import pika  # noqa: F401  (the one the sync API runs on)
except ImportError as exc:
    raise ImportError(
        "amqprpc.sync runs on pika, which is not installed: pip install 'amqprpc[pika]'",
        name="pika",
    ) from exc

from .client import ClientCodec, ThreadSafeClientCodec, client_codec
from .server import ServerCodec, server_codec

__all__ = ["ClientCodec", "ServerCodec", "ThreadSafeClientCodec", "client_codec", "server_codec"]
