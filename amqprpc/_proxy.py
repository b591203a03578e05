"""Service proxies: `client.get_user(x)` -> a call of `Service.GetUser`.

Owns the client-side spelling of method names (PROTOCOL.md section 7): attribute names are
sent in Go style, names already in Go style go verbatim, private names are refused. A proxy
only names the method; the codec it wraps makes the call, so one proxy serves the sync codec
(returns the result) and the async one (returns an awaitable). No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._naming import go_name

__all__ = ["RemoteMethod", "ServiceProxy"]

R = TypeVar("R")
F = TypeVar("F")

Caller = Callable[[str, object, "float | None"], R]


class RemoteMethod(Generic[R, F]):
    """One remote method; call it with one argument (and an optional `timeout=`)."""

    __slots__ = ("_call", "_future", "name")

    def __init__(self, name: str, call: Caller[R], future: Caller[F]) -> None:
        self.name = name
        self._call = call
        self._future = future

    def __call__(self, arg: object = None, *, timeout: float | None = None) -> R:
        """Call the method. Returns what the codec's `call` returns (a result or awaitable)."""
        return self._call(self.name, arg, timeout)

    def future(self, arg: object = None, *, timeout: float | None = None) -> F:
        """Start the call without waiting. Returns the codec's future for it (on a codec
        without futures, what a call returns: the result, or an awaitable of it)."""
        return self._future(self.name, arg, timeout)

    def __repr__(self) -> str:
        return f"<RemoteMethod {self.name}>"


class ServiceProxy(Generic[R, F]):
    """Attributes are the remote methods of one service: `proxy.Mul(...)`, `proxy.mul(...)`.

    `R` is what a call returns (a result, or an awaitable of one); `F` what `.future()` does.
    """

    def __init__(self, service: str, call: Caller[R], future: Caller[F] | None = None) -> None:
        self._service = service
        self._call = call
        self._future: Caller[Any] = future or call

    def __getattr__(self, attr: str) -> RemoteMethod[R, F]:
        if attr.startswith("_"):
            raise AttributeError(attr)  # private names are never remote methods
        method: RemoteMethod[R, F] = RemoteMethod(
            f"{self._service}.{go_name(attr)}", self._call, self._future
        )
        setattr(self, attr, method)  # the next lookup is a plain attribute read
        return method

    def __repr__(self) -> str:
        return f"<ServiceProxy {self._service}>"
