"""The amqprpc error tree.

Owns every exception class the library raises, split by whose fault it is: the remote
server's (`RemoteError`), the clock's (`RPCTimeout`), the broker's (`Unroutable`,
`BrokerError`, `ConnectionLost`), a peer that broke the wire contract (`ProtocolViolation`),
or the caller's (`UsageError` and its kin). Nothing here does I/O or knows a client library.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConnectionLost",
    "EncodeError",
    "MessageTooLarge",
    "ProtocolViolation",
    "RPCError",
    "RPCTimeout",
    "RegistrationError",
    "RemoteError",
    "Unroutable",
    "UsageError",
    "connection_closed",
    "login_refused",
    "vhost_refused",
]


class RPCError(Exception):
    """Base of every exception amqprpc raises."""


class RemoteError(RPCError):
    """The server answered the call with an error.

    `str(err)` is the server's error text exactly as sent in the reply's `error` header;
    `remote_type` is the exception class name a Python server adds (None from Go servers).
    """

    def __init__(self, text: str, remote_type: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.remote_type = remote_type

    def __repr__(self) -> str:
        return f"RemoteError({self.text!r}, remote_type={self.remote_type!r})"


class RPCTimeout(RPCError, TimeoutError):
    """No reply arrived before the call's deadline."""


class Unroutable(RPCError):
    """The broker returned the request: no queue is bound under that name."""


class ConnectionLost(RPCError):
    """The connection or channel closed while the call was in flight (or before it began)."""


class ProtocolViolation(RPCError):
    """A message broke the wire contract: undecodable body or a missing/garbled property."""


class BrokerError(RPCError):
    """The broker refused an operation; `reply_code` is the AMQP reply code (e.g. 406)."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(f"{reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text


class UsageError(RPCError, ValueError):
    """The caller passed an invalid value (a bad timeout, name or option)."""


class RegistrationError(UsageError):
    """A handler cannot be served: bad arity, private or duplicate name, not callable."""


class EncodeError(UsageError):
    """A value cannot be encoded by the formatter (e.g. NaN in JSON, an unknown type)."""


class MessageTooLarge(EncodeError):
    """An encoded body is larger than the configured maximum message size."""


_INTERNAL_ERROR = 541
_DENIED = "is deprecated"  # RabbitMQ 4's text for a denied deprecated feature


def connection_closed(what: str, reply_code: int | None, reply_text: str) -> RPCError:
    """The error for a connection the broker closed (connection.close) while doing `what`.

    Returns BrokerError when the broker refused what was asked and closed the whole connection
    to say so (541 for a denied deprecated feature, RabbitMQ 4), else ConnectionLost.
    """
    if reply_code == _INTERNAL_ERROR and _DENIED in reply_text:
        return BrokerError(reply_code, f"{what}: {reply_text}")
    return ConnectionLost(f"{what}: the broker closed the connection ({reply_code} {reply_text})")


def login_refused(address: str, user: str) -> BrokerError:
    """The error for a broker that refused the user's login (connection.close 403 while
    connecting): names the user, never the password."""
    return BrokerError(
        403, f"connecting to {address}: access refused for user {user!r} (wrong user name or "
        "password)"
    )  # fmt: skip


def vhost_refused(address: str, user: str, vhost: str) -> BrokerError:
    """The error for a broker that refused the virtual host (connection.close 530 while
    connecting)."""
    return BrokerError(
        530, f"connecting to {address}: virtual host {vhost!r} does not exist, or user "
        f"{user!r} may not use it"
    )  # fmt: skip
