"""The raw aiormq loops: a client and a server that speak amqprpc's wire protocol with aiormq's
public API and no library, as a hand-written aiormq program would (publisher confirms off,
one consumer callback per message). The baseline of the aiormq adapter's rows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import harness


async def serve_raw_aiormq(queue: str) -> None:
    """A raw aiormq server: declare as Go does, prefetch, reply, then ack (as amqprpc's
    default ack="late" does)."""
    import aiormq
    from pamqp import commands as spec
    from peers_aio import PREFETCH, _compact

    connection = await aiormq.connect(harness.URL)
    channel = await connection.channel(publisher_confirms=False)
    await channel.queue_declare(queue)
    await channel.basic_qos(prefetch_count=PREFETCH)

    async def on_request(message: Any) -> None:
        props = message.header.properties
        args = json.loads(message.body)
        properties = spec.Basic.Properties(
            correlation_id=props.correlation_id,
            reply_to=props.reply_to,
            message_id=props.message_id,
        )
        reply = _compact(args["A"] * args["B"])
        await channel.basic_publish(
            reply, exchange="", routing_key=props.correlation_id, properties=properties
        )
        await channel.basic_ack(message.delivery.delivery_tag)

    await channel.basic_consume(queue, on_request)
    print("ready", flush=True)
    await channel.closing


async def client_raw_aiormq(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """A raw aiormq client: exclusive reply queue, no-ack consumer, requests published
    `mandatory` with `expiration`, replies matched by message_id. (aiormq reports returns only
    with publisher confirms, which would add a round trip: this loop does without.)"""
    import aiormq
    from pamqp import commands as spec
    from peers_aio import TIMEOUT, _compact, measure

    connection = await aiormq.connect(harness.URL)
    channel = await connection.channel(publisher_confirms=False)
    futures: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(message: Any) -> None:
        future = futures.pop(message.header.properties.message_id, None)
        if future is not None and not future.done():
            future.set_result(message.body)

    declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
    reply_queue = declared.queue
    await channel.basic_consume(reply_queue, on_reply, no_ack=True)
    loop = asyncio.get_running_loop()
    counter = iter(range(1 << 62))
    expiration = str(int(TIMEOUT * 1000))

    async def call(i: int) -> Any:
        call_id = str(next(counter))
        future = futures[call_id] = loop.create_future()
        properties = spec.Basic.Properties(
            correlation_id=reply_queue,
            reply_to="Arith.Mul",
            message_id=call_id,
            expiration=expiration,
        )
        body = _compact({"A": i, "B": 2})
        await channel.basic_publish(
            body, exchange="", routing_key=queue, properties=properties, mandatory=True
        )
        return json.loads(await future)

    result = await measure(call, calls, inflight, warmup)
    harness.report(result)
    await channel.close()
    await connection.close()
    return result
