"""The sync API, on pika: `client_codec(...)`, `server_codec(...)`.

Needs the `pika` extra: `pip install amqprpc[pika]`.
"""

from __future__ import annotations

from .client import ClientCodec, ThreadSafeClientCodec, client_codec
from .server import ServerCodec, server_codec

__all__ = ["ClientCodec", "ServerCodec", "ThreadSafeClientCodec", "client_codec", "server_codec"]
