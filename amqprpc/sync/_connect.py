"""pika connection parameters from what the sync API's factories take (URLs, lists of them,
parameters), and one connection attempt with its failure named.

Client-library exceptions of connecting become amqprpc errors here; `_link` maps the rest.
"""

from __future__ import annotations

import socket
from typing import Any

import pika
import pika.exceptions

from .._errors import ConnectionLost, UsageError, login_refused, vhost_refused
from .._urls import address, redacted

__all__ = ["addresses", "connected", "connection_parameters"]


def connection_parameters(target: object) -> Any:
    """pika connection parameters from a URL string or parameters object, or from a list of
    them (a cluster's nodes: connecting tries them in order, and takes the first that answers).

    amqps:// URLs give TLS connections. pika reads TLS settings from an `ssl_options` query
    argument, a URL-encoded Python dict literal: `?ssl_options={'ca_certs': '/etc/ca.pem'}`
    trusts a private CA. Raises UsageError for anything else, or when those TLS files cannot
    be loaded. Its text never shows the password.
    """
    if isinstance(target, str):
        address(target)  # amqp:// or amqps://, with a port that is a number
        try:
            return pika.URLParameters(target)
        except (ValueError, TypeError, SyntaxError, IndexError) as exc:  # SyntaxError: ssl_options
            # Their texts may quote parts of the URL, the password included: name the type only.
            kind = type(exc).__name__
            raise UsageError(f"not an AMQP URL: {redacted(target)} ({kind})") from None
        except OSError as exc:  # FileNotFoundError, ssl.SSLError: from loading ssl_options files
            raise UsageError(f"cannot load the TLS files of {redacted(target)}: {exc}") from None
    if isinstance(target, pika.connection.Parameters):
        return target
    if isinstance(target, (list, tuple)) and target:
        return [connection_parameters(one) for one in target]
    raise UsageError(
        f"expected a pika BlockingConnection, URL or parameters, or a non-empty list of URLs "
        f"or parameters, not {target!r}"
    )


def addresses(parameters: Any) -> str:
    # "host:port" of each node a connection may be made to, for error texts.
    nodes = parameters if isinstance(parameters, list) else [parameters]
    return ", ".join(f"{one.host}:{one.port}" for one in nodes)


def connected(parameters: Any, address: str) -> pika.BlockingConnection:
    # One connection attempt, its failure named: the broker's refusals as BrokerError, the
    # rest as ConnectionLost (the next node may answer).
    user = getattr(parameters.credentials, "username", "?")
    try:
        return pika.BlockingConnection(parameters)
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise login_refused(address, user) from exc
    except pika.exceptions.ProbableAccessDeniedError as exc:
        raise vhost_refused(address, user, parameters.virtual_host) from exc
    except pika.exceptions.AMQPConnectionError as exc:
        raise ConnectionLost(_why(exc)) from exc
    except (ConnectionError, OSError) as exc:
        raise ConnectionLost(str(exc) or type(exc).__name__) from exc


def _why(exc: BaseException) -> str:
    # What pika's connection error wraps, said plainly: "connection refused", a time-out, or
    # the name of pika's error.
    inner: object = exc.args[0] if exc.args else None
    cause = getattr(inner, "exception", None)  # AMQPConnectorSocketConnectError and kin
    for reason in (cause, inner):
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return "timed out"
        if isinstance(reason, OSError):
            return reason.strerror or str(reason)
    return type(inner).__name__ if isinstance(inner, BaseException) else type(exc).__name__
