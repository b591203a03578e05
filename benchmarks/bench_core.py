"""The core alone, no broker: CPU microseconds per call, both sides together.

One call = the client encodes and numbers a request, the server takes the delivery, decodes
it, runs the handler, encodes the reply (and its ack), and the client matches and decodes the
reply. The baseline, measured in the same run, is the bare minimum of that work: encoding and
decoding the argument and the result with the same formatter and nothing else.

    python benchmarks/bench_core.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import amqprpc
from amqprpc import Registry
from amqprpc.protocol import IGNORED, ClientProtocol, Delivery, ServerProtocol, call_handler


class Arith:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]


def core_loop(formatter: amqprpc.Formatter, calls: int) -> float:
    registry = Registry()
    registry.register(Arith())
    server = ServerProtocol(registry=registry, formatter=formatter)
    client: ClientProtocol[None] = ClientProtocol(
        request_queue="q", reply_queue="amq.gen-reply", formatter=formatter
    )
    start = time.process_time()
    for i in range(calls):
        started = client.start_call(  # as the adapters call it: with the deadline header
            "Arith.Mul", {"A": i, "B": 3}, now=0.0, token=None, wall=time.time()
        )
        publish = started.publish
        received = server.receive(
            Delivery(properties=publish.properties, body=publish.body, delivery_tag=i + 1)
        )
        invoke = received.invoke
        assert invoke is not None
        reply = server.finish(invoke, call_handler(invoke, time.time))[0]
        done = client.receive(Delivery(properties=reply.properties, body=reply.body))
        assert done is not IGNORED and done.value == 3 * i
    return (time.process_time() - start) / calls * 1e6


def baseline_loop(formatter: amqprpc.Formatter, calls: int) -> float:
    handler = Arith().mul
    start = time.process_time()
    for i in range(calls):
        body = formatter.pack({"A": i, "B": 3})
        result = formatter.pack(handler(formatter.unpack(body)))  # type: ignore[arg-type]
        assert formatter.unpack(result) == 3 * i
    return (time.process_time() - start) / calls * 1e6


def pending_memory(calls: int) -> float:
    """Bytes per pending call with `calls` in flight (the table, its entries, deadlines)."""
    client: ClientProtocol[None] = ClientProtocol(
        request_queue="q", reply_queue="amq.gen-reply", formatter=amqprpc.Json()
    )
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [client.start_call("Arith.Mul", i, now=0.0, token=None).call_id for i in range(calls)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == len(client.pending) == calls
    return (after - before - kept.__sizeof__()) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"\ncore: {args.calls} calls a round, {args.rounds} rounds (medians, CPU us per call)")
    print(f"{'formatter':<12}{'baseline':>12}{'core':>12}{'core - base':>14}{'ratio (range)':>22}")
    for formatter in (amqprpc.Json(), amqprpc.MsgPack()):
        base, core = [], []
        for _ in range(args.rounds):
            base.append(baseline_loop(formatter, args.calls))
            core.append(core_loop(formatter, args.calls))
        ratios = [c / b for c, b in zip(core, base, strict=True)]
        print(
            f"{type(formatter).__name__:<12}{statistics.median(base):>12.1f}"
            f"{statistics.median(core):>12.1f}"
            f"{statistics.median(core) - statistics.median(base):>14.1f}"
            f"{statistics.median(ratios):>10.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    print(f"memory per pending call, 10,000 in flight: {pending_memory(10_000):.0f} bytes")


if __name__ == "__main__":
    main()
