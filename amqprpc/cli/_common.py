"""What the subcommands of `amqprpc` share: the exit codes and the mapping from amqprpc's
errors to them, the `--url`/`--format`/`--timeout` options, the JSON argument and result
(MsgPack values JSON cannot hold, such as bytes, printed in a stated way), logging to stderr,
and writing to the terminal.

Imports no client library: each command imports the API it runs on when it runs.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

from .._errors import (
    BrokerError,
    ConnectionLost,
    RemoteError,
    RPCError,
    RPCTimeout,
    Unroutable,
    UsageError,
)
from .._formatters import Formatter, Json, MsgPack

__all__ = [
    "DEFAULT_URL",
    "EXIT_CODES_HELP",
    "EXIT_CONNECTION",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_REMOTE",
    "EXIT_TIMEOUT",
    "EXIT_UNROUTABLE",
    "EXIT_USAGE",
    "Command",
    "add_call_arguments",
    "add_format_option",
    "add_timeout_option",
    "add_url_option",
    "configure_logging",
    "err",
    "exit_code",
    "formatter_of",
    "json_argument",
    "out",
    "reported",
    "to_json",
    "urls_of_args",
]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"

EXIT_OK = 0
EXIT_REMOTE = 1  # the server answered with an error (doctor: a check failed)
EXIT_USAGE = 2  # argparse's own code for bad usage; also a bad target, URL or option value
EXIT_TIMEOUT = 3
EXIT_UNROUTABLE = 4
EXIT_CONNECTION = 5
EXIT_OTHER = 6  # any other amqprpc error: an undecodable reply, say

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  the server answered with an error (its text on stderr)
  2  bad usage: arguments, JSON argument, URL, target
  3  timeout: no reply within --timeout (RPCTimeout)
  4  no such queue: the broker returned the request (Unroutable)
  5  connection failure: refused, lost, or the broker refused the login (ConnectionLost,
     BrokerError)
  6  another amqprpc error (an undecodable reply, say)"""

_FORMATS: dict[str, type[Formatter]] = {"json": Json, "msgpack": MsgPack}


class Command(Protocol):
    """A subcommand module: its name, one line of help, its options, and what it runs."""

    NAME: str
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments, description and epilog to its parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the subcommand. Returns the process's exit code."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an amqprpc error that ended a command."""
    codes: list[tuple[type[BaseException], int]] = [
        (RemoteError, EXIT_REMOTE),
        (RPCTimeout, EXIT_TIMEOUT),
        (Unroutable, EXIT_UNROUTABLE),
        (ConnectionLost, EXIT_CONNECTION),
        (BrokerError, EXIT_CONNECTION),
        (UsageError, EXIT_USAGE),
        (RPCError, EXIT_OTHER),
    ]
    for kind, code in codes:
        if isinstance(exc, kind):
            return code
    return EXIT_OTHER


def add_url_option(parser: argparse.ArgumentParser) -> None:
    """`--url`, repeatable: a cluster's nodes, tried in order."""
    parser.add_argument(
        "--url", action="append", metavar="URL",
        help="broker URL; give it again for each node of a cluster, tried in order "
        f"(default: $AMQPRPC_URL, else {DEFAULT_URL})",
    )  # fmt: skip


def urls_of_args(args: argparse.Namespace) -> str | list[str]:
    """The URL (or list of a cluster's URLs) the command connects to."""
    urls: list[str] | None = args.url
    if not urls:
        return os.environ.get("AMQPRPC_URL") or DEFAULT_URL
    return urls[0] if len(urls) == 1 else urls


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """`--format json|msgpack`: the body format every peer of the queue uses."""
    parser.add_argument(
        "--format", choices=sorted(_FORMATS), default="json",
        help="body format; every peer of a queue must use the same one (default: json)",
    )  # fmt: skip


def formatter_of(args: argparse.Namespace) -> type[Formatter]:
    """The formatter `--format` names."""
    return _FORMATS[args.format]


def add_call_arguments(parser: argparse.ArgumentParser, argument_help: str) -> None:
    """The positional arguments of a call: QUEUE, METHOD and its optional JSON-ARG."""
    parser.add_argument("queue", metavar="QUEUE", help="the server's request queue")
    parser.add_argument("method", metavar="METHOD", help='"Service.Method", sent as written')
    parser.add_argument(
        "argument", metavar="JSON-ARG", nargs="?", default="null", help=argument_help
    )


def add_timeout_option(parser: argparse.ArgumentParser, default: float) -> None:
    """`--timeout S`: each call's deadline."""
    parser.add_argument(
        "--timeout", type=_positive, default=default, metavar="S",
        help=f"seconds to wait for each reply (default: {default:g})",
    )  # fmt: skip


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def json_argument(parser: argparse.ArgumentParser, text: str) -> object:
    """The call's argument, decoded from JSON; bad JSON is a usage error (exit 2)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        parser.error(f"the argument is not JSON ({exc}): {text!r}")


def to_json(value: object) -> str:
    """`value` as one line of JSON. What JSON cannot hold comes out as strings: bytes (MsgPack
    bin) as base64, as the Json formatter sends them; timestamps as RFC 3339; map keys that
    are not str, int, float, bool or None as their JSON text."""
    return json.dumps(_jsonable(value), ensure_ascii=False, allow_nan=True)


def _jsonable(value: object) -> Any:
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().isoformat()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, msgpack.ExtType):
        return {"msgpack_ext": value.code, "data": base64.b64encode(value.data).decode("ascii")}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _key(key: object) -> object:
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    converted = _jsonable(key)
    return converted if isinstance(converted, str) else json.dumps(converted)


def configure_logging(verbose: int = 0) -> None:
    """Log to stderr: the command's own lines at INFO; amqprpc's WARNING and above, or INFO
    (`-v`) or DEBUG (`-vv`); the client libraries' (pika, aiormq, asyncio) only with `-v`,
    since the command names their failures itself."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel({0: logging.CRITICAL, 1: logging.WARNING}.get(verbose, logging.DEBUG))
    library = logging.getLogger("amqprpc")
    library.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))
    logging.getLogger("amqprpc.cli").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


def out(text: str) -> None:
    """One line on stdout (what the command was asked for)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """One line on stderr (what went wrong, and progress)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def reported(name: str, action: Callable[[], int]) -> int:
    """Run `action`; an amqprpc error ends it with its exit code and its text on stderr."""
    try:
        return action()
    except RemoteError as exc:
        kind = f" ({exc.remote_type})" if exc.remote_type else ""
        err(f"amqprpc {name}: remote error{kind}: {exc.text}")
        return EXIT_REMOTE
    except RPCError as exc:
        err(f"amqprpc {name}: {type(exc).__name__}: {exc}")
        return exit_code(exc)
    except ImportError as exc:  # a client library that is not installed: names the extra
        err(f"amqprpc {name}: {exc}")
        return EXIT_USAGE
