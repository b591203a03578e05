"""The async API, on aioamqp: `await server_codec(...)`, `await client_codec(...)`.

Needs the `aioamqp` extra: `pip install amqprpc[aioamqp]`.
"""

from __future__ import annotations

from .client import AsyncClientCodec, client_codec
from .server import AsyncServerCodec, server_codec

__all__ = ["AsyncClientCodec", "AsyncServerCodec", "client_codec", "server_codec"]
