"""An async amqprpc client calling Arith.Mul / Arith.Div on any server (Python or Go).

python examples/pyclient.py --url amqp://guest:guest@127.0.0.1:5672/ --format json
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aioamqp

import amqprpc


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="testrpc")
    parser.add_argument("--format", choices=["json", "msgpack"], default="json")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    formatter = amqprpc.Json if args.format == "json" else amqprpc.MsgPack
    transport, protocol = await aioamqp.from_url(args.url)
    failures = 0
    async with await amqprpc.client_codec(
        protocol, args.queue, formatter, timeout=args.timeout
    ) as codec:
        arith = codec.client("Arith")
        product = await arith.Mul({"A": 6, "B": 7})
        print(f"Arith.Mul 6*7 = {product}")
        failures += product != 42
        quotient = await arith.Div({"A": 17, "B": 5})
        print(f"Arith.Div 17/5 = {quotient}")
        failures += quotient != {"Quo": 3, "Rem": 2}
        try:
            await arith.Div({"A": 1, "B": 0})
            failures += 1
        except amqprpc.RemoteError as err:
            print(f"Arith.Div 1/0 -> RemoteError: {err}")
            failures += str(err) != "divide by zero"
    await protocol.close()
    transport.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
