"""The async API, on aiormq or aioamqp: `await server_codec(...)`, `await client_codec(...)`.

Needs a client library: `pip install amqprpc[aiormq]` (Python 3.11+) or `amqprpc[aioamqp]`.
The codecs take a connection of either kind, or URLs (then they connect through aiormq when
it is installed); importing this module loads neither.
"""

from __future__ import annotations

from .client import AsyncClientCodec, client_codec
from .server import AsyncServerCodec, server_codec

__all__ = ["AsyncClientCodec", "AsyncServerCodec", "client_codec", "server_codec"]
