"""Deadline propagation: the deadline of the request a handler is serving, for its own calls.

Owns the one context variable both servers set around a handler (to the deadline its caller
sent, PROTOCOL.md section 12.1) and every client reads when a call starts, so that a call
made while serving a request never outlives that request's caller. Deadlines here are Unix
times (seconds), since they cross hosts; the clock reading is the adapter's. No I/O.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["request_deadline", "served", "serving"]

_DEADLINE: ContextVar[float | None] = ContextVar("amqprpc_request_deadline", default=None)


def request_deadline() -> float | None:
    """The deadline (Unix time, seconds) of the request being served in this context, when
    its caller sent one; None outside a handler or for callers that send none (Go)."""
    return _DEADLINE.get()


def serving(deadline: float | None) -> Token[float | None]:
    """Enter a handler serving a request with `deadline`. Returns the token for `served`."""
    return _DEADLINE.set(deadline)


def served(token: Token[float | None]) -> None:
    """Leave the handler entered with `serving`."""
    _DEADLINE.reset(token)
