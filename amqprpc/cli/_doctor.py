"""`amqprpc doctor`: checks a broker and, optionally, a request queue, and prints one verdict
line per fact (`ok`, `warn`, `FAIL`): the broker's product and version, whether it permits
the transient non-exclusive queues go-amqprpc declares (RabbitMQ 4.3 denies them by
default), the queue's kind, depth and consumers, and a round trip to whatever serves it.

Never creates or changes the queue it is asked about: it declares it passively (which fails
for a missing queue), then learns its flags from the broker's answers to declarations with
guessed flags, which the broker refuses (406) without changing anything unless they match
the queue's own. Runs on pika (amqprpc.sync).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import BrokerError, RemoteError, RPCError, RPCTimeout, Unroutable
from ._common import (
    EXIT_OK,
    EXIT_REMOTE,
    add_format_option,
    add_timeout_option,
    add_url_option,
    formatter_of,
    out,
    reported,
    urls_of_args,
)

if TYPE_CHECKING:
    from ..sync._probe import BrokerProbe

__all__ = ["HELP", "NAME", "PING_METHOD", "Verdict", "configure", "queue_flags", "run"]

NAME = "doctor"
HELP = "check a broker (product, version, transient queues) and a request queue"

PING_METHOD = "AmqprpcDoctor.Ping"  # no server has it: any answer is an error reply

EPILOG = f"""\
examples:
  amqprpc doctor                           # the broker at $AMQPRPC_URL
  amqprpc doctor testrpc --timeout 2       # and the request queue testrpc
  amqprpc doctor --url amqp://u:p@rabbit1/ --url amqp://u:p@rabbit2/ testrpc

Each line starts with ok, warn or FAIL. For QUEUE: whether it exists, its kind (durable or
transient; classic, quorum or stream), the messages ready and the consumers, then a ping:
a call of {PING_METHOD}, which no server has, so any server (Python or Go) answers it
with an error ("rpc: can't find service ..."), which proves a server is there; no answer
within --timeout means none is. A queue without consumers fails the ping unasked: no
request is sent, as it would only wait in the queue. QUEUE is never created or changed.

exit codes:
  0  no check failed (warnings allowed)
  1  a check failed
  2  bad usage
"""

# "inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is
# 'true'" (RabbitMQ's 406 text; a queue argument's: "... current is the value 'quorum' of
# type 'longstr'").
_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'.*current is (?:the value )?'([^']*)'")
_GUESSES = 4  # durable, auto_delete, x-queue-type: each refusal corrects one
_DENIED = 541  # RabbitMQ 4 closes the connection for a denied deprecated feature


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One line of the report."""

    level: str  # "ok", "warn" or "FAIL"
    text: str

    def line(self) -> str:
        """The verdict as printed: its level padded to four characters, then its text."""
        return f"{self.level:<4} {self.text}"


def _ok(text: str) -> Verdict:
    return Verdict(level="ok", text=text)


def _warn(text: str) -> Verdict:
    return Verdict(level="warn", text=text)


def _fail(text: str) -> Verdict:
    return Verdict(level="FAIL", text=text)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `doctor`'s arguments."""
    parser.description = "Check the broker and, with QUEUE, a request queue and its servers."
    parser.epilog = EPILOG
    parser.add_argument("queue", metavar="QUEUE", nargs="?", help="a request queue to check")
    add_format_option(parser)
    add_timeout_option(parser, 5.0)
    add_url_option(parser)


def run(args: argparse.Namespace) -> int:
    """Run the checks, printing each verdict as it comes. Returns 1 when any failed."""
    return reported(NAME, lambda: _doctor(args))


def _doctor(args: argparse.Namespace) -> int:
    from ..sync._probe import BrokerProbe

    failed = False

    def report(verdict: Verdict) -> None:
        nonlocal failed
        failed = failed or verdict.level == "FAIL"
        out(verdict.line())

    target = urls_of_args(args)
    try:
        probe = BrokerProbe.connect(target)
    except RPCError as exc:
        report(_fail(f"connect: {exc}"))
        return EXIT_REMOTE
    consumers = 0
    try:
        report(_broker(probe))
        report(_transient_queues(target))
        if args.queue is not None:
            verdicts, consumers = _queue(probe, args.queue)
            for verdict in verdicts:
                report(verdict)
    except RPCError as exc:  # the broker went, or refused what no check expects
        report(_fail(f"{type(exc).__name__}: {exc}"))
        return EXIT_REMOTE
    finally:
        with contextlib.suppress(RPCError):
            probe.close()
    if consumers:
        report(_ping(args))
    elif args.queue is not None and not failed:
        # A request would wait in the queue until it expired: send none.
        report(_fail(f"ping {args.queue!r}: no server consumes the queue (no request sent)"))
    return EXIT_REMOTE if failed else EXIT_OK


def _broker(probe: BrokerProbe) -> Verdict:
    properties = probe.server_properties()
    if properties is None:
        return _warn(
            f"broker at {probe.address}: product and version unknown (this pika keeps "
            "the server properties elsewhere)",
        )
    product, version = properties.get("product", "?"), properties.get("version", "?")
    platform = properties.get("platform")
    text = f"broker at {probe.address}: {product} {version}" + (
        f" on {platform}" if platform else ""
    )
    if product != "RabbitMQ":
        return _warn(f"{text} (amqprpc is tested on RabbitMQ 3.10 and 4.0)")
    return _ok(text)


def _transient_queues(target: object) -> Verdict:
    # RabbitMQ 4 closes the whole connection (541) for a denied deprecated feature: probe on
    # a throwaway one.
    from ..sync._probe import BrokerProbe

    name = f"amqprpc-doctor-{uuid.uuid4().hex[:12]}"
    probe = BrokerProbe.connect(target)
    try:
        probe.declare(name, auto_delete=True)
        probe.delete(name)
    except BrokerError as exc:
        if exc.reply_code == _DENIED:
            return _warn(
                "transient non-exclusive queues are denied (RabbitMQ 4.3's default): "
                'go-amqprpc\'s request queues and servers with declare="go" are refused; '
                "permit deprecated_features.permit.transient_nonexcl_queues on every node, or "
                "declare request queues durable everywhere (amqprpc serve --declare durable)",
            )
        return _warn(f"transient queues: could not check ({exc})")
    finally:
        probe.close()
    return _ok(
        'transient non-exclusive queues are permitted (go-amqprpc\'s and declare="go")',
    )


def queue_flags(probe: BrokerProbe, queue: str) -> tuple[dict[str, Any], str | None]:
    """What the broker says of an existing queue's flags: `durable`, `auto_delete` and
    `x-queue-type` when learnt, and why the rest was not (None when all was)."""
    guess: dict[str, Any] = {"durable": True, "auto_delete": False, "x-queue-type": "classic"}
    learnt: dict[str, Any] = {}
    for _ in range(_GUESSES):
        try:
            probe.declare(
                queue,
                durable=guess["durable"],
                auto_delete=guess["auto_delete"],
                arguments={"x-queue-type": guess["x-queue-type"]},
            )
            return guess, None
        except BrokerError as exc:
            match = _INEQUIVALENT.search(exc.reply_text) if exc.reply_code == 406 else None
            if match is None:
                return learnt, str(exc)
            name, current = match.groups()
            # The broker checks durable, then auto_delete, then the arguments: a complaint
            # about one confirms those before it.
            order = list(guess)
            for confirmed in order[: order.index(name) if name in guess else 2]:
                learnt[confirmed] = guess[confirmed]
            if name not in guess:
                return learnt, f"it has arguments, {name!r} among them"
            guess[name] = current == "true" if name in ("durable", "auto_delete") else current
            learnt[name] = guess[name]
    return learnt, "the broker's answers did not settle"


def _queue(probe: BrokerProbe, queue: str) -> tuple[list[Verdict], int]:
    # The verdicts on `queue`, and its consumers (0 when it is missing).
    try:
        messages, consumers = probe.declare(queue, passive=True)
    except BrokerError as exc:
        if exc.reply_code == 404:
            return [
                _fail(
                    f"queue {queue!r} does not exist (calls to it "
                    "get Unroutable: start a server, or check the name)"
                )
            ], 0
        if exc.reply_code == 405:
            return [
                _fail(
                    f"queue {queue!r} is exclusive to another "
                    "connection (a client's reply queue?), not a request queue"
                )
            ], 0
        raise
    flags, unknown = queue_flags(probe, queue)
    kind = []
    if "durable" in flags:
        kind.append("durable" if flags["durable"] else "transient")
    if flags.get("auto_delete"):
        kind.append("auto-delete")
    kind.append(str(flags.get("x-queue-type", "queue of unknown type")))
    facts = f"{' '.join(kind)}, {messages} ready, {consumers} consumer" + (
        "" if consumers == 1 else "s"
    )
    verdicts = [_ok(f"queue {queue!r}: {facts}")]
    if unknown is not None:
        verdicts.append(_warn(f"queue {queue!r}: kind not fully known ({unknown})"))
    return verdicts, consumers


def _ping(args: argparse.Namespace) -> Verdict:
    from ..sync import client_codec

    started = time.perf_counter()
    codec = client_codec(urls_of_args(args), args.queue, formatter_of(args), timeout=args.timeout)
    with codec:
        try:
            codec.call(PING_METHOD, None)
            answer = "a result"
        except RemoteError as exc:
            answer = repr(exc.text)
        except RPCTimeout:
            return _fail(f"ping {args.queue!r}: no server answered within {args.timeout:g} s")
        except Unroutable:
            return _fail(f"ping {args.queue!r}: the queue is gone")
        except RPCError as exc:
            return _fail(f"ping {args.queue!r}: {type(exc).__name__}: {exc}")
    took = (time.perf_counter() - started) * 1000
    return _ok(f"ping {args.queue!r}: a server answered in {took:.1f} ms ({answer})")
