"""A sync amqprpc server that outlives broker restarts and network cuts.

python examples/recovering_server.py --url amqp://guest:guest@127.0.0.1:5672/ --queue testrpc

`serve_forever(reconnect=True)` survives a lost connection by itself: it connects again
(with a growing delay while the broker is down or still starting) and declares the queue
again (a restarted broker has lost its non-durable queues). What it cannot do is wait for a
broker that is down before the server exists, since making the codec connects: this loop
adds that.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import amqprpc
import amqprpc.sync

logger = logging.getLogger("recovering_server")


class Arith:
    """The service Go's examples call: Arith.Mul, Arith.Div, Arith.Echo."""

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> dict[str, int]:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def echo(self, arg: Any) -> Any:
        return arg


def serve_with_recovery(
    url: str,
    queue: str,
    service: object,
    *,
    formatter: Any = amqprpc.Json,
    first_delay: float = 0.5,
    max_delay: float = 30.0,
    on_serving: Callable[[amqprpc.sync.ServerCodec], None] | None = None,
    **options: Any,
) -> None:
    """Serve `service` on `queue` until the server is stopped: `stop()`, SIGINT or SIGTERM.

    Making the server fails with ConnectionLost while the broker is down, still starting, or
    refuses the credentials: wait `first_delay` seconds (with jitter), doubling up to
    `max_delay`, and try again. `on_serving(server)` is called with the codec before it
    serves (call `server.stop()` on it to end the loop). `options` go to `server_codec`.
    Raises any other RPCError (a BrokerError when the queue exists with other flags, say).
    """
    delay = first_delay
    while True:
        try:
            server = amqprpc.sync.server_codec(url, queue, formatter, **options)
            break
        except amqprpc.ConnectionLost as exc:
            logger.warning("cannot connect (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_delay)
    with server:
        server.register(service)
        if on_serving is not None:
            on_serving(server)
        server.serve_forever(reconnect=True)  # returns when stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="testrpc")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("pika").setLevel(logging.WARNING)  # pika narrates every connection
    try:
        serve_with_recovery(args.url, args.queue, Arith())
    except KeyboardInterrupt:  # Ctrl-C while waiting to reconnect
        pass


if __name__ == "__main__":
    main()
