"""Scenarios every client/server pairing must get right, in either format.

Each case: a method name sent verbatim, the argument, and the expected end: a value, or a
RemoteError text (and remote type when a Python server sends one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    arg: Any
    result: Any = None
    error: str | None = None
    remote_type: str | None = None
    msgpack_only: bool = False


NESTED = {"s": "héllo", "i": 2**40, "f": 1.5, "b": True, "n": None, "l": [1, "x"], "m": {"k": 1}}


_SIX: Any = "six"


def _raised(fn: Callable[[], object]) -> str:
    """The text of the exception `fn` raises: error texts differ between Python versions."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - its text is the point
        return str(exc)
    raise AssertionError("it did not raise")

CASES = [
    Case("mul", "Arith.Mul", {"A": 6, "B": 7}, result=42),
    Case("mul-negative", "Arith.Mul", {"A": -3, "B": 5}, result=-15),
    Case("snake-alias", "Arith.mul", {"A": 2, "B": 2}, result=4),
    Case("div-struct", "Arith.Div", {"A": 7, "B": 2}, result={"Quo": 3, "Rem": 1}),
    Case("div-by-zero", "Arith.Div", {"A": 1, "B": 0}, error="divide by zero",
         remote_type="ZeroDivisionError"),
    Case("echo-nested", "Arith.Echo", NESTED, result=NESTED),
    Case("echo-bytes", "Arith.Echo", {"b": b"\x00\x01\xff"}, result={"b": b"\x00\x01\xff"},
         msgpack_only=True),
    Case("async-handler", "Arith.Sleep", {"Ms": 1}, result=True),
    Case("unknown-method", "Arith.Nope", 1, error="rpc: can't find method Arith.Nope"),
    Case("unknown-service", "Nope.Mul", 1, error="rpc: can't find service Nope.Mul"),
    Case("ill-formed", "Mul", 1, error="rpc: service/method request ill-formed: Mul"),
    Case("private", "Arith._secret", 1, error="rpc: can't find method Arith._secret"),
    Case("wrong-arg-type", "Arith.Mul", "six", error=_raised(lambda: _SIX["A"]),
         remote_type="TypeError"),
]  # fmt: skip


def cases_for(formatter: Any) -> list[Case]:
    """The cases that apply to a format (bytes only round-trip through MsgPack)."""
    return [c for c in CASES if not (c.msgpack_only and formatter.__name__ != "MsgPack")]
