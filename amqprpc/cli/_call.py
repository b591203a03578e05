"""`amqprpc call`: one call, its result as JSON on stdout, and an exit code for each way a
call can fail. Runs on the sync API's thread-safe client (pika)."""

from __future__ import annotations

import argparse

from ._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    add_call_arguments,
    add_format_option,
    add_timeout_option,
    add_url_option,
    formatter_of,
    json_argument,
    out,
    reported,
    to_json,
    urls_of_args,
)

__all__ = ["HELP", "NAME", "configure", "run"]

NAME = "call"
HELP = "call a method once and print its result as JSON"

EPILOG = f"""\
examples:
  amqprpc call testrpc Arith.Mul '{{"A": 6, "B": 7}}'          # prints 42
  amqprpc call testrpc Arith.Echo '{{"y": 1}}' --format msgpack --timeout 2
  amqprpc call testrpc Arith.Ping                             # the argument is null

The result is printed as one line of JSON. MsgPack values JSON cannot hold are printed as
strings: bytes (bin) as base64, as the Json formatter would send them; timestamps as
RFC 3339.

{EXIT_CODES_HELP}
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `call`'s arguments."""
    parser.description = "Call QUEUE's METHOD with one JSON argument; print the result as JSON."
    parser.epilog = EPILOG
    add_call_arguments(parser, "the call's one argument, as JSON (default: null)")
    add_format_option(parser)
    add_timeout_option(parser, 10.0)
    add_url_option(parser)
    parser.set_defaults(parser=parser)


def run(args: argparse.Namespace) -> int:
    """Make the call; print its result. Returns the exit code."""
    argument = json_argument(args.parser, args.argument)

    def call() -> int:
        from ..sync import client_codec

        codec = client_codec(
            urls_of_args(args), args.queue, formatter_of(args), timeout=args.timeout
        )
        with codec:
            result = codec.call(args.method, argument)
        out(to_json(result))
        return EXIT_OK

    return reported(NAME, call)
