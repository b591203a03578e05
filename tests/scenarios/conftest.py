"""The target fixture: every scenario runs on a real RabbitMQ and on the in-memory broker,
with the same expectations (which is what proves the in-memory broker faithful)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import BROKER_URL
from tests.scenarios.harness import MemoryTarget, RealTarget, Target


@pytest.fixture(
    params=[pytest.param("rabbitmq", marks=pytest.mark.broker), "memory"],
)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    made: Target = RealTarget(BROKER_URL) if request.param == "rabbitmq" else MemoryTarget()
    yield made
    made.close()


@pytest.fixture(params=["sync", "async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
