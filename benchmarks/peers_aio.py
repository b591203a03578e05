"""The asyncio peers: amqprpc's async client and server (on aioamqp or aiormq), the raw aioamqp
and aiormq loops that speak the same wire protocol with no library (peers_aiormq.py), and
aio-pika's JsonRPC pattern.

Every server serves Arith.Mul ({"A": a, "B": b} -> a*b) on the request queue it is given and
prints "ready" once it consumes. Every client runs `calls` calls of Arith.Mul with `inflight`
in flight (that many workers, one call at a time each) after `warmup` calls, checks every
result, and returns its figures (see `measure`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import harness
from peers_aiormq import client_raw_aiormq, serve_raw_aiormq

# Every server lets this many requests be in progress at once (basic.qos prefetch), more than
# any client keeps in flight, so that no row is capped by it.
PREFETCH = 200
# The whole measured burst must end within this (a guard against a hang, not a timeout per
# call: the raw loops keep no per-call timers, as a minimal hand-written loop would not).
BURST_LIMIT = 300.0
# The per-call timeout amqprpc uses; the raw and aio-pika clients send it as `expiration`.
TIMEOUT = 60.0

Call = Callable[[int], Awaitable[Any]]


async def _burst(call: Call, total: int, inflight: int, latencies: list[float] | None) -> float:
    per_worker = total // inflight
    perf = time.perf_counter

    async def worker() -> None:
        for i in range(per_worker):
            began = perf()
            result = await call(i)
            if latencies is not None:
                latencies.append(perf() - began)
            if result != 2 * i:
                raise AssertionError(f"Arith.Mul({i}, 2) returned {result!r}")

    start = perf()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(inflight))), BURST_LIMIT)
    return perf() - start


async def measure(call: Call, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """Warm up, wait for the harness's go, run the measured burst.

    Returns calls, seconds, calls_per_s, p50_us, p99_us and cpu_s (this process's CPU time
    over the burst: time.process_time(), every thread included).
    """
    if warmup:
        await _burst(call, max(warmup, inflight), inflight, None)
    harness.wait_for_go()
    latencies: list[float] = []
    cpu = time.process_time()
    seconds = await _burst(call, calls, inflight, latencies)
    cpu = time.process_time() - cpu
    done = len(latencies)
    return {
        "calls": done,
        "seconds": seconds,
        "calls_per_s": done / seconds,
        "cpu_s": cpu,
        **harness.latency_summary(latencies),
    }


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- servers ------------------------------------------------------------------------------


async def _connect(backend: str) -> Any:
    # A connection of the async backend's kind, as a user of the async API makes one.
    if backend == "aiormq":
        import aiormq

        return await aiormq.connect(harness.URL)
    import aioamqp

    _, protocol = await aioamqp.from_url(harness.URL)
    return protocol


async def serve_amqprpc(queue: str, backend: str = "aioamqp") -> None:
    """amqprpc's async server: defaults (ack after reply) but for max_concurrency."""
    import amqprpc

    connection = await _connect(backend)
    server = await amqprpc.server_codec(
        connection, queue, amqprpc.Json, max_concurrency=PREFETCH
    )

    async def mul(args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    server.register(mul, name="Arith.Mul")
    await server.started()
    print("ready", flush=True)
    await server.wait_closed()


async def serve_raw(queue: str) -> None:
    """A raw aioamqp server: declare as Go does, prefetch, reply, then ack (as amqprpc's
    default ack="late" does)."""
    import aioamqp

    _, protocol = await aioamqp.from_url(harness.URL)
    channel = await protocol.channel()
    await channel.queue_declare(queue)
    await channel.basic_qos(prefetch_count=PREFETCH)

    async def on_request(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        args = json.loads(body)
        properties = {
            "correlation_id": props.correlation_id,
            "reply_to": props.reply_to,
            "message_id": props.message_id,
        }
        reply = _compact(args["A"] * args["B"])
        await ch.basic_publish(reply, "", props.correlation_id, properties=properties)
        await ch.basic_client_ack(envelope.delivery_tag)

    await channel.basic_consume(on_request, queue_name=queue)
    print("ready", flush=True)
    await channel.close_event.wait()


async def serve_aiopika(queue: str) -> None:
    """aio-pika's JsonRPC server; no publisher confirms (nobody else in the run uses them)."""
    import aio_pika
    from aio_pika.patterns import JsonRPC

    connection = await aio_pika.connect(harness.URL)
    channel = await connection.channel(publisher_confirms=False)
    await channel.set_qos(prefetch_count=PREFETCH)
    rpc = await JsonRPC.create(channel)

    async def mul(*, A: int, B: int) -> int:  # the wire's names
        return A * B

    await rpc.register(queue, mul, auto_delete=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- clients ------------------------------------------------------------------------------


async def client_amqprpc(
    queue: str, calls: int, inflight: int, warmup: int, backend: str = "aioamqp"
) -> dict[str, Any]:
    """amqprpc's async client (a ServiceProxy method, as users call it)."""
    import amqprpc

    connection = await _connect(backend)
    codec = await amqprpc.client_codec(connection, queue, amqprpc.Json, timeout=TIMEOUT)
    mul = codec.client("Arith").Mul
    result = await measure(lambda i: mul({"A": i, "B": 2}), calls, inflight, warmup)
    harness.report(result)
    await codec.close()
    await connection.close()
    return result


async def client_raw(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """A raw aioamqp client: exclusive reply queue, no-ack consumer, requests published
    `mandatory` with `expiration`, replies matched by message_id, returns failing the call."""
    import aioamqp

    _, protocol = await aioamqp.from_url(harness.URL)
    futures: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        future = futures.pop(props.message_id, None)
        if future is not None and not future.done():
            future.set_result(body)

    async def on_return(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        future = futures.pop(props.message_id, None)
        if future is not None and not future.done():
            future.set_exception(LookupError(f"unroutable: {envelope.routing_key}"))

    channel = await protocol.channel(return_callback=on_return)
    declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
    reply_queue = declared["queue"]
    await channel.basic_consume(on_reply, queue_name=reply_queue, no_ack=True)
    loop = asyncio.get_running_loop()
    counter = iter(range(1 << 62))
    expiration = str(int(TIMEOUT * 1000))

    async def call(i: int) -> Any:
        call_id = str(next(counter))
        future = futures[call_id] = loop.create_future()
        properties = {
            "correlation_id": reply_queue,
            "reply_to": "Arith.Mul",
            "message_id": call_id,
            "expiration": expiration,
        }
        body = _compact({"A": i, "B": 2})
        await channel.basic_publish(body, "", queue, properties=properties, mandatory=True)
        return json.loads(await future)

    result = await measure(call, calls, inflight, warmup)
    harness.report(result)
    await channel.close()
    await protocol.close()
    return result


async def client_aiopika(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """aio-pika's JsonRPC client (mandatory, with expiration as amqprpc sends)."""
    import aio_pika
    from aio_pika.patterns import JsonRPC

    connection = await aio_pika.connect(harness.URL)
    channel = await connection.channel(publisher_confirms=False)
    rpc = await JsonRPC.create(channel)
    expiration = int(TIMEOUT)

    def call(i: int) -> Awaitable[Any]:
        return rpc.call(queue, {"A": i, "B": 2}, expiration=expiration)

    result = await measure(call, calls, inflight, warmup)
    harness.report(result)
    await rpc.close()
    await connection.close()
    return result


def _traced(run: Callable[..., Awaitable[Any]], tracing: str) -> Callable[..., Awaitable[Any]]:
    """`run` in a process with OpenTelemetry set up: "off" imports the API and sets no tracer
    provider (tracing installed, not configured); "on" sets the SDK's provider, with a batch
    processor and an exporter that drops every span (the cost of making them, not of sending
    them anywhere)."""

    async def traced(*args: Any) -> Any:
        from opentelemetry import trace

        if tracing == "on":
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )

            class Dropped(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    return SpanExportResult.SUCCESS

            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(Dropped()))
            trace.set_tracer_provider(provider)
        return await run(*args)

    return traced


SERVERS: dict[str, Callable[[str], Awaitable[None]]] = {
    "amqprpc-aio": serve_amqprpc,
    "amqprpc-aiormq": functools.partial(serve_amqprpc, backend="aiormq"),
    "raw-aioamqp": serve_raw,
    "raw-aiormq": serve_raw_aiormq,
    "aio-pika": serve_aiopika,
    "amqprpc-aio-otel-off": _traced(serve_amqprpc, "off"),
    "amqprpc-aio-otel-on": _traced(serve_amqprpc, "on"),
}
CLIENTS: dict[str, Callable[[str, int, int, int], Awaitable[dict[str, Any]]]] = {
    "amqprpc-aio": client_amqprpc,
    "amqprpc-aiormq": functools.partial(client_amqprpc, backend="aiormq"),
    "raw-aioamqp": client_raw,
    "raw-aiormq": client_raw_aiormq,
    "aio-pika": client_aiopika,
    "amqprpc-aio-otel-off": _traced(client_amqprpc, "off"),
    "amqprpc-aio-otel-on": _traced(client_amqprpc, "on"),
}
