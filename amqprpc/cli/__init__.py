"""The `amqprpc` command: serve, call, bench, doctor and demo (`python -m amqprpc` too).

Built on the standard library alone (argparse, and a progress bar drawn with `\\r`), so the
command needs nothing beyond the package and its client libraries. Each subcommand is one
module with `NAME`, `HELP`, `configure(parser)` and `run(args)`; `COMMANDS` lists them, so a
new subcommand is a module and a line here. `import amqprpc` never imports this package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import _bench, _call, _demo, _doctor, _serve
from ._common import Command

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[Command, ...] = (_serve, _call, _bench, _doctor, _demo)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `amqprpc` with one subparser per entry of `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="amqprpc",
        description="RPC over AMQP 0-9-1 (RabbitMQ), wire-compatible with Go's net/rpc "
        "go-amqprpc codec: serve Python code, call and benchmark any server (Python or Go), "
        "check a broker.",
        epilog="Run `amqprpc COMMAND --help` for a command's options, examples and exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"amqprpc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(
            command.NAME, help=command.HELP, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `amqprpc` with `argv` (default: the process's arguments). Returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130  # the shell's code for SIGINT, outside what a command handles itself
    return code


if __name__ == "__main__":
    sys.exit(main())
