"""`amqprpc demo`: a server and clients calling it, with timings, on the in-memory broker
or a real one (the same as `python -m amqprpc.demo` and `./demo`)."""

from __future__ import annotations

import argparse

__all__ = ["HELP", "NAME", "configure", "run"]

NAME = "demo"
HELP = "run a server and clients calling it, with timings (in memory unless --url)"

EPILOG = """\
examples:
  amqprpc demo                                            # no RabbitMQ needed
  amqprpc demo --url amqp://guest:guest@127.0.0.1:5672/ --calls 500

exit codes:
  0  every answer was right
  1  a call failed (the error is printed)
  2  bad usage
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's arguments."""
    from ..demo import add_arguments

    parser.description = "Serve Arith and call it from the async and sync clients, with timings."
    parser.epilog = EPILOG
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo. Returns the exit code."""
    from ..demo import demo

    return demo(args.url, args.calls)
