"""Method names on the wire: Go's net/rpc rules and their Python spelling.

Owns the mapping of PROTOCOL.md section 7: the wire name is `Service.Method` in Go style
(`get_user` -> `GetUser`), split at the last dot, case-sensitive. Must not know handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["WIRE_NAME_ATTR", "go_name", "is_private", "wire_name"]

WIRE_NAME_ATTR = "__amqprpc_name__"

F = TypeVar("F", bound=Callable[..., object])


def go_name(name: str) -> str:
    """The Go-style spelling of a Python name: split on `_`, upper-case each part's first letter.

    `mul` -> `Mul`, `get_user_id` -> `GetUserId`, `GetUserID` -> `GetUserID` (kept as is).
    """
    if name[:1].isupper() and "_" not in name:
        return name
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def is_private(name: str) -> bool:
    """Whether any dotted part of `name` starts with `_` (such names are never served)."""
    return any(part.startswith("_") for part in name.split("."))


def wire_name(name: str) -> Callable[[F], F]:
    """Decorator: serve this method under `name` instead of its Go-style spelling.

    For initialisms no rule can produce: `@wire_name("GetUserID")` on `get_user_id`.
    """

    def mark(func: F) -> F:
        setattr(func, WIRE_NAME_ATTR, name)
        return func

    return mark
