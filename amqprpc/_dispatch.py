"""The dispatch table: which callables a server exposes, under which wire names.

Owns the `Registry` (an explicit object: no module-level registry, no decorator that
registers globally) and the lookup of a request's method name, with net/rpc's error texts for
unknown names (PROTOCOL.md section 4). Only registered callables are reachable: lookup is an
exact dictionary match, so no request can walk attributes (`Server.mul.__globals__`), and no
name with a part starting with `_` is ever registered. Must not run handlers or do I/O.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import RegistrationError
from ._naming import WIRE_NAME_ATTR, go_name, is_private

__all__ = ["Handler", "NotFound", "Registry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handler:
    """A served callable: its wire name, the callable, and whether it is `async def`."""

    name: str
    func: Callable[[Any], Any]
    is_async: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NotFound:
    """A method name that resolves to nothing, with the text net/rpc would answer."""

    text: str


def _is_async(func: object) -> bool:
    # Bound methods, functions and functools.partial of an `async def` all count.
    return inspect.iscoroutinefunction(func)


def _check_one_argument(func: Callable[..., object], label: str) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # some builtins have no signature; nothing to check
    try:
        signature.bind(None)
    except TypeError as exc:
        raise RegistrationError(
            f"{label}{signature} cannot be called with exactly one argument ({exc}); an RPC "
            "handler takes one argument and returns one value (prefix helpers with _ to keep "
            "them private)"
        ) from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > 255:
        raise RegistrationError(f"a wire name is a str of 1 to 255 bytes, not {name!r}")
    if is_private(name):
        raise RegistrationError(f"{name!r}: names starting with _ are never served")
    if any(not part for part in name.split(".")):
        raise RegistrationError(f"{name!r}: empty part in a dotted name")


class Registry:
    """Method names -> handlers for one server. Not thread-safe: register before serving."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._canonical: list[str] = []
        self._services: set[str] = set()

    def register(self, target: object, *, name: str | None = None) -> list[str]:
        """Expose a class instance's public methods, or one function.

        An instance's methods are served as `Service.Method` (service = `name` or the class
        name; method = its Go-style name, or the name given with `@wire_name`); the Python
        spelling (`Service.get_user`) resolves too. A function is served as `name`, or its own
        name. Returns the canonical wire names added. Raises RegistrationError for a class
        (not an instance), a handler that cannot take exactly one argument, a private, empty
        or duplicate name; nothing is registered then.
        """
        if isinstance(target, type):
            raise RegistrationError(f"register an instance of {target.__name__}, not the class")
        if type(target).__module__ == "builtins" and not inspect.isroutine(target):
            raise RegistrationError(
                "register() serves an instance of your own class, or a function, not "
                f"{type(target).__name__} {target!r:.40}"
            )
        if inspect.isroutine(target) or isinstance(target, functools.partial):
            entries = [self._function_entry(target, name)]
        else:
            entries = self._instance_entries(target, name)
        added: dict[str, Handler] = {}
        canonical = []
        for wire, aliases, func in entries:
            handler = Handler(name=wire, func=func, is_async=_is_async(func))
            for key in (wire, *aliases):
                if key in self._handlers or key in added:
                    raise RegistrationError(f"{key!r} is already registered")
                added[key] = handler
            canonical.append(wire)
        self._handlers.update(added)
        self._canonical.extend(canonical)
        self._services.update(key.rpartition(".")[0] for key in added if "." in key)
        return canonical

    def _function_entry(
        self, func: Any, name: str | None
    ) -> tuple[str, tuple[str, ...], Callable[[Any], Any]]:
        if name is None:  # an explicit name="" is checked (and refused), not replaced
            name = str(getattr(func, WIRE_NAME_ATTR, None) or getattr(func, "__name__", ""))
        wire = name
        _check_name(wire)
        _check_one_argument(func, wire)
        return wire, (), func

    def _instance_entries(
        self, obj: object, service: str | None
    ) -> list[tuple[str, tuple[str, ...], Callable[[Any], Any]]]:
        service = type(obj).__name__ if service is None else service
        _check_name(service)
        entries: list[tuple[str, tuple[str, ...], Callable[[Any], Any]]] = []
        cls = type(obj)
        for attr in dir(cls):
            if attr.startswith("_"):
                continue
            static = inspect.getattr_static(cls, attr)
            if isinstance(static, (property, type)):
                continue  # never evaluate properties; nested classes are not methods
            func = getattr(obj, attr)
            if not callable(func):
                continue
            method = getattr(func, WIRE_NAME_ATTR, None) or go_name(attr)
            wire = f"{service}.{method}"
            _check_name(wire)
            _check_one_argument(func, wire)
            alias = f"{service}.{attr}"
            entries.append((wire, (alias,) if alias != wire else (), func))
        if not entries:
            raise RegistrationError(f"{type(obj).__name__} has no public methods to serve")
        return entries

    def lookup(self, method: str | None) -> Handler | NotFound:
        """The handler for a request's method name, or NotFound with net/rpc's error text."""
        handler = self._handlers.get(method) if method else None
        if handler is not None:
            return handler
        method = method or ""
        service, dot, _ = method.rpartition(".")
        if not dot:
            return NotFound(text=f"rpc: service/method request ill-formed: {method}")
        if service not in self._services:
            return NotFound(text=f"rpc: can't find service {method}")
        return NotFound(text=f"rpc: can't find method {method}")

    def names(self) -> list[str]:
        """The canonical wire names served, in registration order."""
        return list(self._canonical)

    def __contains__(self, method: object) -> bool:
        return method in self._handlers

    def __len__(self) -> int:
        return len(self._canonical)
