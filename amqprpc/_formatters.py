"""Body formatters: the argument or result, encoded on its own with no envelope.

Owns the `Formatter` protocol and the two built-in formats of PROTOCOL.md section 8, with
exactly the settings that keep Go's `encoding/json` and vmihailenco/msgpack happy. Nothing on
the wire says which format is in use, so both ends of a queue must agree. Must not know about
AMQP properties or pending calls.
"""

from __future__ import annotations

import base64
import json
from typing import Protocol, runtime_checkable

import msgpack

from ._errors import EncodeError, ProtocolViolation, UsageError

__all__ = [
    "Formatter",
    "FormatterLike",
    "Json",
    "MsgPack",
    "as_formatter",
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


def _json_default(obj: object) -> object:
    # Go's encoding/json sends []byte as a standard base64 string (PROTOCOL.md 8.1).
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


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
        self._decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def pack(self, obj: object) -> bytes:
        """Encode `obj` as compact JSON. Raises EncodeError for NaN/Infinity or unknown types."""
        try:
            return self._encoder.encode(obj).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise EncodeError(f"cannot encode as JSON: {exc}") from exc

    def unpack(self, body: bytes) -> object:
        """Decode a JSON body. Raises ProtocolViolation on invalid or too deeply nested input."""
        try:
            return self._decoder.decode(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolViolation(f"undecodable JSON body: {exc}") from exc

    def __repr__(self) -> str:
        return "Json()"


class MsgPack:
    """Go-compatible MsgPack: str as str, bytes as bin, tz-aware datetimes as timestamps."""

    content_type: str | None = None

    def pack(self, obj: object) -> bytes:
        """Encode `obj` as msgpack. Raises EncodeError for unsupported types or ranges."""
        try:
            return msgpack.packb(obj, use_bin_type=True, datetime=True)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(f"cannot encode as msgpack: {exc}") from exc

    def unpack(self, body: bytes) -> object:
        """Decode a msgpack body. Raises ProtocolViolation on invalid or trailing data."""
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # TypeError: an unhashable map key (e.g. an array used as a key).
            reason = str(exc) or type(exc).__name__
            raise ProtocolViolation(f"undecodable msgpack body: {reason}") from exc

    def __repr__(self) -> str:
        return "MsgPack()"


def as_formatter(formatter: FormatterLike) -> Formatter:
    """Accept a formatter instance or a class to instantiate (`amqprpc.Json` works as is).

    Raises UsageError when the result has no callable `pack` and `unpack`.
    """
    instance = formatter() if isinstance(formatter, type) else formatter
    if not (
        callable(getattr(instance, "pack", None)) and callable(getattr(instance, "unpack", None))
    ):
        raise UsageError(f"{formatter!r} is not a formatter: it needs pack() and unpack()")
    return instance


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
