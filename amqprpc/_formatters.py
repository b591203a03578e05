"""Body formatters: the argument or result, encoded on its own with no envelope.

Owns the `Formatter` protocol and the two built-in formats of PROTOCOL.md section 8, with
exactly the settings that keep Go's `encoding/json` and vmihailenco/msgpack happy. Nothing on
the wire says which format is in use, so both ends of a queue must agree. Must not know about
AMQP properties or pending calls.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import math
from collections.abc import Callable
from types import MethodType
from typing import Any, Generic, Protocol, TypeVar, overload, runtime_checkable

import msgpack

from ._errors import EncodeError, ProtocolViolation, UsageError

__all__ = [
    "CONTAINER_BYTES",
    "GUARD_FROM",
    "Formatter",
    "FormatterLike",
    "Json",
    "MsgPack",
    "as_formatter",
    "container_budget",
    "pack_body",
    "unpack_body",
]


@runtime_checkable
class Formatter(Protocol):
    """What a body format provides: `pack(obj) -> bytes` and `unpack(bytes) -> obj`.

    `pack` may return `str` (sent as UTF-8). `unpack` should raise ValueError (or a subclass)
    on a body it cannot decode; amqprpc turns any such failure into `ProtocolViolation`.
    """

    def pack(self, obj: object) -> bytes | str:
        """Encode one value into a message body."""
        ...

    def unpack(self, body: bytes) -> object:
        """Decode one message body into a value."""
        ...


FormatterLike = Formatter | type

A = TypeVar("A")
R = TypeVar("R")

# Decoding can amplify a body many times over (an empty msgpack map is 1 byte on the wire and
# about 70 in memory). Below GUARD_FROM bytes even that stays within a few MiB, so small
# bodies take the fast path; larger ones may hold at most one container (array, map or
# extension) per CONTAINER_BYTES bytes of body, which leaves scalars (a short string: about
# 20 times its encoding) as the worst case. tests/integration/test_bounded_input.py measures it.
GUARD_FROM = 64 * 1024
CONTAINER_BYTES = 16


def container_budget(size: int) -> int:
    """How many containers a guarded body of `size` bytes may decode into."""
    return size // CONTAINER_BYTES


class _Shared(Generic[A, R]):
    """A method that works read from the class too, as the seed's formatters were used
    (`amqprpc.Json.pack(obj)`): there it runs on one default instance of the class, unless
    an instance is passed first (`Json.pack(instance, obj)`, as a subclass may call it)."""

    def __init__(self, func: Callable[[Any, A], R]) -> None:
        self._func = func
        self.__doc__ = func.__doc__
        self._name = func.__name__

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[..., R]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Callable[[A], R]: ...
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., R]:
        if obj is None:
            assert owner is not None
            return functools.partial(self._on_class, owner)
        bound = MethodType(self._func, obj)
        if inspect.getattr_static(type(obj), self._name) is self:
            vars(obj)[self._name] = bound  # later reads skip the descriptor (no override)
        return bound

    def _on_class(self, owner: type, *args: Any) -> R:
        if len(args) == 2 and isinstance(args[0], owner):
            return self._func(args[0], args[1])
        (value,) = args  # raises for anything but one argument
        return self._func(_default_instance(owner), value)


_DEFAULTS: dict[type, object] = {}


def _default_instance(cls: type | None) -> object:
    assert cls is not None
    instance = _DEFAULTS.get(cls)
    if instance is None:
        instance = _DEFAULTS[cls] = cls()
    return instance


def _json_default(obj: object) -> object:
    # Go's encoding/json sends []byte as a standard base64 string (PROTOCOL.md 8.1).
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 overflows to infinity, which JSON cannot carry and Go's decoder refuses.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a float")
    return value


class Json:
    """Go-compatible JSON: compact, UTF-8, no NaN/Infinity; `bytes` go as base64 strings."""

    content_type: str | None = None

    def __init__(self, *, sort_keys: bool = False) -> None:
        self._encoder = json.JSONEncoder(
            separators=(",", ":"),
            allow_nan=False,
            ensure_ascii=False,
            sort_keys=sort_keys,
            default=_json_default,
        )
        # Go never sends NaN or Infinity (its encoder refuses them); neither do we accept them.
        self._decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)

    @_Shared
    def pack(self, obj: object) -> bytes:
        """Encode `obj` as compact JSON. Raises EncodeError for NaN/Infinity or unknown types."""
        try:
            return self._encoder.encode(obj).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise EncodeError(f"cannot encode as JSON: {exc}") from exc

    @_Shared
    def unpack(self, body: bytes) -> object:
        """Decode a JSON body. Raises ProtocolViolation on invalid, too deeply nested or (for
        large bodies) container-dense input."""
        if len(body) > GUARD_FROM:
            containers = body.count(b"[") + body.count(b"{")  # an upper bound
            if containers > container_budget(len(body)):
                raise ProtocolViolation(_too_dense("JSON", containers, len(body)))
        try:
            return self._decoder.decode(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolViolation(f"undecodable JSON body: {exc}") from exc

    def __repr__(self) -> str:
        return "Json()"


class MsgPack:
    """Go-compatible MsgPack: str as str, bytes as bin, tz-aware datetimes as timestamps."""

    content_type: str | None = None

    @_Shared
    def pack(self, obj: object) -> bytes:
        """Encode `obj` as msgpack. Raises EncodeError for unsupported types or ranges."""
        try:
            return msgpack.packb(obj, use_bin_type=True, datetime=True)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(f"cannot encode as msgpack: {exc}") from exc

    @_Shared
    def unpack(self, body: bytes) -> object:
        """Decode a msgpack body. Raises ProtocolViolation on invalid or trailing data, and
        (for large bodies) on container-dense input."""
        try:
            if len(body) <= GUARD_FROM:
                return msgpack.unpackb(body, raw=False, strict_map_key=False)
            return _unpack_guarded(body)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # TypeError: an unhashable map key (e.g. an array used as a key).
            reason = str(exc) or type(exc).__name__
            raise ProtocolViolation(f"undecodable msgpack body: {reason}") from exc

    def __repr__(self) -> str:
        return "MsgPack()"


def _too_dense(kind: str, containers: int, size: int) -> str:
    return (
        f"{kind} body of {size} bytes holds over {containers} containers, more than one per "
        f"{CONTAINER_BYTES} bytes"
    )


def _unpack_guarded(body: bytes) -> object:
    # msgpack's own limits bound each container's length by the body's; these hooks bound
    # how many containers there are.
    budget = container_budget(len(body))
    count = 0

    def counted(obj: Any) -> Any:
        nonlocal count
        count += 1
        if count > budget:
            raise ValueError(_too_dense("msgpack", count, len(body)))
        return obj

    def ext(code: int, data: bytes) -> msgpack.ExtType:
        return counted(msgpack.ExtType(code, data))

    return msgpack.unpackb(
        body, raw=False, strict_map_key=False, object_hook=counted, list_hook=counted,
        ext_hook=ext,
    )  # fmt: skip


def _used_as_class(cls: type) -> bool:
    # The seed's formatters were classes of plain one-argument functions, used as the class
    # itself; so are classes of staticmethods or classmethods. Anything else is instantiated.
    for name in ("pack", "unpack"):
        raw = inspect.getattr_static(cls, name, None)
        if isinstance(raw, (staticmethod, classmethod)):
            continue
        if not inspect.isfunction(raw):
            return False
        try:
            parameters = list(inspect.signature(raw).parameters)
            inspect.signature(raw).bind(None)
        except (TypeError, ValueError):
            return False  # `def pack(self, obj)`: a method
        if parameters and parameters[0] == "self":
            return False  # `def pack(self, obj=None)`: a method all the same
    return True


def as_formatter(formatter: FormatterLike) -> Formatter:
    """Accept a formatter instance, a class to instantiate (`amqprpc.Json` works as is), or
    a class whose `pack`/`unpack` are one-argument functions or staticmethods (used as is).

    Raises UsageError when the result has no callable `pack` and `unpack`.
    """
    instance: Any = formatter
    if isinstance(formatter, type) and not _used_as_class(formatter):
        instance = formatter()
    if not (
        callable(getattr(instance, "pack", None)) and callable(getattr(instance, "unpack", None))
    ):
        raise UsageError(f"{formatter!r} is not a formatter: it needs pack() and unpack()")
    return instance  # type: ignore[no-any-return]


def pack_body(formatter: Formatter, obj: object) -> bytes:
    """Encode `obj` with `formatter`, accepting `str` results as UTF-8.

    Raises EncodeError when the formatter fails or returns something that is not bytes.
    """
    try:
        body = formatter.pack(obj)
    except EncodeError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(f"cannot encode with {formatter!r}: {exc}") from exc
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise EncodeError(f"{formatter!r}.pack returned {type(body).__name__}, not bytes or str")


def unpack_body(formatter: Formatter, body: bytes) -> object:
    """Decode `body` with `formatter`.

    Raises ProtocolViolation for any decoding failure, whatever the formatter raised.
    """
    try:
        return formatter.unpack(body)
    except ProtocolViolation:
        raise
    except (ValueError, TypeError, LookupError, RecursionError) as exc:
        raise ProtocolViolation(f"undecodable body ({formatter!r}): {exc}") from exc
