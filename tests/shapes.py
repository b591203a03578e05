"""The formatter shapes the seed documented, for the core and the broker tiers alike: a class
of plain one-argument functions, a class of staticmethods, and a class whose methods take
`self` (instantiated, and counting what it packed)."""

from __future__ import annotations

from typing import Any

import amqprpc


class SeedStyle:
    """As the seed's README showed it: plain functions, no `self`, passed as the class."""

    def pack(pyobj):  # type: ignore[no-untyped-def]
        return amqprpc.Json.pack(pyobj)

    def unpack(binrepr):  # type: ignore[no-untyped-def]
        return amqprpc.Json.unpack(binrepr)


class Static:
    @staticmethod
    def pack(obj: Any) -> bytes:
        return amqprpc.Json.pack(obj)

    @staticmethod
    def unpack(body: bytes) -> Any:
        return amqprpc.Json.unpack(body)


class WithSelf:
    def __init__(self) -> None:
        self.packed = 0

    def pack(self, obj: Any) -> bytes:
        self.packed += 1
        return amqprpc.Json.pack(obj)

    def unpack(self, body: bytes) -> Any:
        return amqprpc.Json.unpack(body)
