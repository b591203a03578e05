"""`amqprpc serve`: serves an instance, a class (instantiated with no arguments) or a function
named `MODULE:ATTR`, on the sync server (pika) or, with `--async`, the async one (aiormq or
aioamqp), until SIGINT or SIGTERM. Logs one line when it starts serving and one when it
stops; stopping lets requests in progress finish within the grace period."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from .._errors import ConnectionLost
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    add_format_option,
    add_url_option,
    configure_logging,
    err,
    formatter_of,
    reported,
    urls_of_args,
)

__all__ = ["HELP", "NAME", "configure", "load_target", "run"]

NAME = "serve"
HELP = "serve a Python class, instance or function on a request queue"

logger = logging.getLogger(__name__)

EPILOG = """\
examples:
  amqprpc serve myapp.arith:Arith --queue testrpc               # a class: one instance
  amqprpc serve myapp.arith:calculator --queue testrpc --async  # an instance, async server
  amqprpc serve myapp.tools:mul --name Arith.Mul --queue testrpc --workers 8

MODULE is imported from the current directory (then sys.path). A class is instantiated with
no arguments, and its public methods are served as Class.Method (or --name.Method); a
function is served under its own name, or --name ("Service.Method", as Go clients need).

--workers N bounds the requests in progress at once (the server's max_concurrency, the
basic.qos prefetch) and sizes the thread pool that runs plain (non-async) handlers to match.
`async def` handlers run on an event loop. Without it: 64 in progress, and Python's default
pool (min(32, CPUs + 4) threads).

SIGINT or SIGTERM stops consuming, lets requests in progress finish within --grace seconds,
and exits with 0.

exit codes:
  0  stopped by SIGINT or SIGTERM
  2  bad usage: arguments, URL, a target that cannot be imported or served
  5  connection failure: refused, lost (without --reconnect), or the broker refused the
     login or the queue's declaration (ConnectionLost, BrokerError)
  6  another amqprpc error
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `serve`'s arguments."""
    parser.description = "Serve MODULE:ATTR (a class, an instance or a function) on QUEUE."
    parser.epilog = EPILOG
    parser.add_argument("target", metavar="MODULE:ATTR", help="what to serve, e.g. myapp:Arith")
    parser.add_argument("--queue", required=True, help="the request queue to serve")
    parser.add_argument(
        "--name", help="service name of a class or instance; wire name of a function"
    )
    add_format_option(parser)
    add_url_option(parser)
    parser.add_argument(
        "--workers", type=_count, metavar="N",
        help="requests in progress at once, and threads for plain handlers (default: 64 in "
        "progress, Python's default pool)",
    )  # fmt: skip
    parser.add_argument(
        "--async", dest="use_async", action="store_true",
        help="use the async server (aiormq, else aioamqp) instead of the sync one (pika)",
    )  # fmt: skip
    parser.add_argument(
        "--declare", choices=("go", "durable", "quorum", "passive"), default="go",
        help='how the request queue is declared (default: "go", as go-amqprpc does; RabbitMQ '
        '4.3 needs "durable")',
    )  # fmt: skip
    parser.add_argument(
        "--grace", type=float, default=10.0, metavar="S",
        help="seconds requests in progress get to finish when stopping (default: 10)",
    )  # fmt: skip
    parser.add_argument(
        "--reconnect", action="store_true",
        help="connect again whenever the connection is lost, instead of exiting with 5",
    )  # fmt: skip
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log amqprpc's INFO messages too (-vv: DEBUG)",
    )  # fmt: skip


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1..65535, not {value}")
    return value


def load_target(spec: str) -> object:
    """What `MODULE:ATTR` names: an instance or a function as it is, a class instantiated.
    Raises ValueError naming what is wrong."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected MODULE:ATTR (e.g. myapp.arith:Arith), not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does; a console script's is its bin/
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    if isinstance(target, type):
        try:
            return target()
        except TypeError as exc:
            raise ValueError(f"cannot instantiate {spec} with no arguments: {exc}") from exc
    return target


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM. Returns the exit code."""
    configure_logging(args.verbose)
    try:
        target = load_target(args.target)
    except ValueError as exc:
        err(f"amqprpc serve: {exc}")
        return EXIT_USAGE
    if args.use_async:
        return reported(NAME, lambda: asyncio.run(_serve_async(args, target)))
    return reported(NAME, lambda: _serve_sync(args, target))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"declare": args.declare, "grace": args.grace}
    if args.workers is not None:
        options.update(max_concurrency=args.workers, max_workers=args.workers)
    return options


def _started(args: argparse.Namespace, names: list[str], kind: str) -> None:
    workers = args.workers if args.workers is not None else "default"
    logger.info(
        "serving %s on queue %r (%s, %s, workers %s)",
        ", ".join(names), args.queue, kind, args.format, workers,
    )  # fmt: skip


def _stopped(args: argparse.Namespace) -> None:
    logger.info("stopped serving queue %r", args.queue)


def _serve_sync(args: argparse.Namespace, target: object) -> int:
    from ..sync import server_codec

    server = server_codec(urls_of_args(args), args.queue, formatter_of(args), **_options(args))
    with server:
        names = server.register(target, name=args.name)

        def announce() -> None:
            if server.wait_started():
                _started(args, names, "sync server on pika")

        threading.Thread(target=announce, name="amqprpc-serve-started", daemon=True).start()
        server.serve_forever(reconnect=args.reconnect)  # SIGINT/SIGTERM stop it
    _stopped(args)
    return EXIT_OK


async def _serve_async(args: argparse.Namespace, target: object) -> int:
    from ..aio import server_codec
    from ..aio._open import url_backend

    server = await server_codec(
        urls_of_args(args), args.queue, formatter_of(args), reconnect=args.reconnect,
        **_options(args),
    )  # fmt: skip
    try:
        names = server.register(target, name=args.name)
        await server.started()
        _started(args, names, f"async server on {url_backend()}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        closed = asyncio.ensure_future(server.wait_closed())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if closed.done():
            closed.result()  # raises what stopped a reconnecting server
            raise ConnectionLost(f"the connection serving {args.queue!r} was lost")
        closed.cancel()
    finally:
        await server.close()
    _stopped(args)
    return EXIT_OK
