"""An async amqprpc server with the service the Go examples use (Mul, Div, Echo, Sleep).

python examples/pyserver.py --url amqp://guest:guest@127.0.0.1:5672/ --format json
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import aioamqp

import amqprpc


class Arith:
    """net/rpc style: one argument in, one value out; Go clients call Arith.Mul etc."""

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> dict[str, int]:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def echo(self, arg: Any) -> Any:
        return arg

    @amqprpc.wire_name("GetUserID")  # Go's initialism; the plain rule would give GetUserId
    def get_user_id(self, uid: int) -> dict[str, int]:
        return {"id": uid}

    async def sleep(self, args: dict[str, int]) -> bool:
        await asyncio.sleep(args["Ms"] / 1000)
        return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="testrpc")
    parser.add_argument("--format", choices=["json", "msgpack"], default="json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    formatter = amqprpc.Json if args.format == "json" else amqprpc.MsgPack
    transport, protocol = await aioamqp.from_url(args.url)
    async with await amqprpc.server_codec(protocol, args.queue, formatter) as server:
        server.register(Arith())
        await server.started()
        logging.info("serving %s on %r (%s)", server.registry.names(), args.queue, args.format)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        closed = asyncio.ensure_future(server.wait_closed())
        await asyncio.wait(
            [asyncio.ensure_future(stop.wait()), closed], return_when="FIRST_COMPLETED"
        )
    await protocol.close()
    transport.close()


if __name__ == "__main__":
    asyncio.run(main())
