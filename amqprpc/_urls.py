"""AMQP URLs as the codecs that open their own connections take them: one URL, or a list of
a cluster's nodes, tried in order. Only checks and names them; the adapters connect.
"""

from __future__ import annotations

import urllib.parse

from ._errors import UsageError

__all__ = ["address", "redacted", "urls_of", "user_and_vhost"]


def address(url: object) -> str:
    """ "host:port" of an AMQP URL, for error texts (never its password). Raises UsageError
    when it is not one."""
    if not isinstance(url, str):
        raise UsageError(f"expected an AMQP URL, not {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise UsageError(f"not an AMQP URL (amqp:// or amqps://): {redacted(url)!r}")
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError:
        raise UsageError(f"not an AMQP URL: bad port in {parts.scheme}://...") from None
    return f"{parts.hostname or 'localhost'}:{port}"


def redacted(url: str) -> str:
    """`url` with its user and password, if any, shown as ***, for texts and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def urls_of(target: object) -> list[str] | None:
    """The URLs a codec is to connect to itself (a URL or a non-empty list of them), or None
    when `target` is a connection. Raises UsageError for a URL that is not amqp(s)://."""
    if isinstance(target, str):
        target = [target]
    if not isinstance(target, (list, tuple)):
        return None
    if not target:
        raise UsageError("expected a URL or a non-empty list of URLs, not an empty list")
    for url in target:
        address(url)
    return list(target)


def user_and_vhost(url: str) -> tuple[str, str]:
    """The user name and the virtual host an AMQP URL names (the defaults "guest" and "/"),
    for error texts: never the password."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username) if parts.username else "guest"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return user, urllib.parse.unquote(path) if path else "/"
