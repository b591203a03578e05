"""amqprpc's pytest plugin (loaded through the `pytest11` entry point): a fresh in-memory
broker per test, closed at the test's end.

    def test_mul(memory_broker):
        server = amqprpc.sync.server_codec(memory_broker, "arith", amqprpc.Json)
        ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._broker import MemoryBroker
from ._clock import ManualClock

__all__ = ["manual_clock", "memory_broker"]


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only when the test advances it (`memory_broker` runs on it when a
    test asks for both)."""
    return ManualClock()


@pytest.fixture
def memory_broker(request: pytest.FixtureRequest) -> Iterator[MemoryBroker]:
    """An in-memory broker for this test; on the `manual_clock` if the test uses that too."""
    wanted = "manual_clock" in request.fixturenames
    clock = request.getfixturevalue("manual_clock") if wanted else None
    broker = MemoryBroker(clock=clock)
    yield broker
    broker.close()
