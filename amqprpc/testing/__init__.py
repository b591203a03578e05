"""Test a service without a broker: an in-memory broker that the real codecs run on.

    broker = amqprpc.testing.MemoryBroker()
    server = await amqprpc.aio.server_codec(broker, "arith", amqprpc.Json)
    client = amqprpc.sync.client_codec(broker, "arith", amqprpc.Json)

All four codec factories take a `MemoryBroker` where they take a connection or a URL, and run
their real code on it through the same Link contract as on RabbitMQ. `MemoryBroker(clock=
ManualClock())` makes time stand still until `broker.advance(seconds)`; `broker.faults` drops,
delays or duplicates replies and cuts connections mid-call. With pytest, the `memory_broker`
fixture (this package's plugin, loaded automatically) gives each test a fresh broker.
"""

from ._broker import MemoryBroker
from ._clock import ManualClock
from ._faults import Faults
from ._links import MemoryAsyncLink, MemoryConnection, MemoryLink

__all__ = [
    "Faults",
    "ManualClock",
    "MemoryAsyncLink",
    "MemoryBroker",
    "MemoryConnection",
    "MemoryLink",
]
