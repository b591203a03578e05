"""Decoding is bounded relative to the body: no JSON infinity, and large bodies may hold at
most one container per CONTAINER_BYTES bytes (PROTOCOL.md section 12's bounded input)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import amqprpc
from amqprpc._formatters import CONTAINER_BYTES, GUARD_FROM


def msgpack_array(count: int, item: bytes) -> bytes:
    return b"\xdd" + count.to_bytes(4, "big") + item * count


def json_array(count: int, item: bytes) -> bytes:
    return b"[" + b",".join([item] * count) + b"]"


@pytest.mark.parametrize("body", [b"1e999", b"-1e999", b"[1.5e400]", b'{"A":2e308}'])
def test_json_numbers_that_overflow_are_refused_like_infinity(body: bytes) -> None:
    with pytest.raises(amqprpc.ProtocolViolation, match="overflows"):
        amqprpc.Json.unpack(body)


def test_large_finite_json_numbers_still_decode() -> None:
    assert amqprpc.Json.unpack(b"[1.7e308, -2.5e-300, 1e5]") == [1.7e308, -2.5e-300, 1e5]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("msgpack empty maps", msgpack_array(GUARD_FROM, b"\x80")),
        ("msgpack empty arrays", msgpack_array(GUARD_FROM, b"\x90")),
        ("msgpack one-entry maps", msgpack_array(GUARD_FROM, b"\x81\xa0\x00")),
        ("msgpack extensions", msgpack_array(GUARD_FROM, b"\xd4\x05\x00")),
        ("json empty objects", json_array(GUARD_FROM, b"{}")),
        ("json empty arrays", json_array(GUARD_FROM, b"[]")),
    ],
)
def test_container_dense_large_bodies_are_refused(kind: str, body: bytes) -> None:
    fmt: Any = amqprpc.MsgPack if kind.startswith("msgpack") else amqprpc.Json
    with pytest.raises(amqprpc.ProtocolViolation, match="containers"):
        fmt.unpack(body)


@pytest.mark.parametrize("fmt", [amqprpc.Json, amqprpc.MsgPack])
def test_small_bodies_are_not_guarded(fmt: Any) -> None:
    value = [{}] * (GUARD_FROM // 4)  # dense, but small: a few MiB at most once decoded
    body = fmt.pack(value)
    assert len(body) <= GUARD_FROM
    assert fmt.unpack(body) == value


@pytest.mark.parametrize("fmt", [amqprpc.Json, amqprpc.MsgPack])
def test_large_ordinary_bodies_decode(fmt: Any) -> None:
    records = [{"Id": i, "Name": f"user-{i}", "Tags": ["a", "b"]} for i in range(20_000)]
    body = fmt.pack(records)
    assert len(body) > GUARD_FROM
    assert fmt.unpack(body) == records
    numbers = list(range(300_000))  # no containers at all: scalars are never counted
    assert fmt.unpack(fmt.pack(numbers)) == numbers


def body_with(containers: int) -> bytes:
    # [blob, [[], [], ...]]: `containers` containers in all, padded to exactly
    # containers * CONTAINER_BYTES bytes.
    size, inner = containers * CONTAINER_BYTES, containers - 2
    blob = size - inner - 16
    for _ in range(3):
        body = msgpack.packb([b"x" * blob, [[]] * inner])
        blob += size - len(body)
    assert len(body) == size
    return body  # type: ignore[no-any-return]


def test_the_budget_is_one_container_per_container_bytes() -> None:
    containers = 4 * GUARD_FROM // CONTAINER_BYTES
    at_limit = body_with(containers)
    assert len(amqprpc.MsgPack.unpack(at_limit)[1]) == containers - 2
    blob, inner = msgpack.unpackb(at_limit)
    over = msgpack.packb([blob[1:], [*inner, []]])  # one container more, the same size
    assert len(over) == len(at_limit)
    with pytest.raises(amqprpc.ProtocolViolation, match="containers"):
        amqprpc.MsgPack.unpack(over)
