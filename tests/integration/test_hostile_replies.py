"""Hostile replies on a client's reply queue (all three client codecs), through a real RabbitMQ.

A fake server answers every request only after junk (unknown, duplicate, late and unparseable
call numbers, odd headers, garbage bodies). Every caller gets its own result, every oddity is
counted, and a reply with a non-str `error` or an undecodable body fails only its own call,
with ProtocolViolation (PROTOCOL.md section 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import amqprpc
from tests.integration import hostile_helpers
from tests.integration.hostile_helpers import FUZZ
from tests.integration.hostile_peers import (
    BAD_ERRORS,
    CLIENTS,
    MALFORMED_IDS,
    REPLY_VARIANTS,
    FakeServer,
)

# The `formatter` fixture (json, msgpack), shared with test_hostile_requests.py: bound
# here, not imported by name, so that no test's argument redefines an import.
formatter = hostile_helpers.formatter


@pytest.fixture
def fake(broker_url: str, queue_name: str, formatter: Any) -> Iterator[FakeServer]:
    server = FakeServer(broker_url, queue_name, formatter).start()
    yield server
    server.stop()


@pytest.fixture(params=list(CLIENTS))
def client(
    request: pytest.FixtureRequest, fake: FakeServer, broker_url: str, queue_name: str,
    formatter: Any,
) -> Iterator[Any]:  # fmt: skip
    peer = CLIENTS[request.param](broker_url, queue_name, formatter)
    yield peer
    peer.close()


def check_outcome(method: str, arg: dict[str, Any], outcome: Any) -> None:
    name = method.rpartition(".")[2]
    if name in ("Echo", "EmptyError"):  # an empty error text is success, as for Go clients
        assert outcome == arg["value"], (method, arg, outcome)
    elif name == "BadError":
        assert isinstance(outcome, amqprpc.ProtocolViolation), (arg, outcome)
        assert "error header is" in str(outcome)
    elif name == "Garbage":
        assert isinstance(outcome, amqprpc.ProtocolViolation), outcome
        assert "undecodable" in str(outcome)
    else:
        assert isinstance(outcome, amqprpc.RemoteError), outcome
        assert (str(outcome), outcome.remote_type) == ("boom", None)  # a non-str type: dropped


def test_bad_replies_fail_only_their_own_call(client: Any, fake: FakeServer) -> None:
    calls: list[tuple[str, Any]] = []
    for i, variant in enumerate(BAD_ERRORS):
        calls.append(("Fake.BadError", {"variant": variant}))
        calls.append(("Fake.Echo", {"value": [i, variant]}))
    calls += [
        ("Fake.Garbage", {}),
        ("Fake.Echo", {"value": "after garbage"}),
        ("Fake.Remote", {}),
        ("Fake.EmptyError", {"value": {"empty": "error"}}),
    ]
    outcomes = client.calls(calls, timeout=10)
    for (method, arg), outcome in zip(calls, outcomes, strict=True):
        check_outcome(method, arg, outcome)
    assert client.calls([("Fake.Echo", {"value": 42})], timeout=10) == [42]
    stats = client.codec.stats
    assert (stats.unknown, stats.duplicate, stats.late, client.codec.malformed) == (0, 0, 0, 0)


def junk_plan(kind: str, n: int, variant: str) -> list[Any]:
    if kind == "malformed":
        return [kind, list(MALFORMED_IDS)[n % len(MALFORMED_IDS)], variant]
    return [kind, n, variant]


junk = st.builds(
    junk_plan,
    st.sampled_from(["unknown", "malformed", "duplicate"]),
    st.integers(0, 1000),
    st.sampled_from(REPLY_VARIANTS),
)
call_plans = st.tuples(
    st.sampled_from(["Echo", "Echo", "EmptyError", "BadError", "Garbage", "Remote"]),
    st.lists(junk, max_size=4),
    st.text(max_size=8) | st.integers(-(2**31), 2**31),
    st.sampled_from(list(BAD_ERRORS)),
)


def test_fuzzed_junk_before_every_reply(client: Any, fake: FakeServer) -> None:
    # A call the fake server answers only after its deadline: the answer comes back late.
    [timed_out] = client.calls([("Fake.Late", {})], timeout=0.5)
    assert isinstance(timed_out, amqprpc.RPCTimeout)

    @FUZZ
    @given(plans=st.lists(call_plans, min_size=1, max_size=8))
    def run(plans: list[tuple[str, list[Any], Any, str]]) -> None:
        calls = [
            (f"Fake.{name}", {"value": [i, value], "junk": before, "variant": variant})
            for i, (name, before, value, variant) in enumerate(plans)
        ]
        for (method, arg), outcome in zip(calls, client.calls(calls, 10), strict=True):
            check_outcome(method, arg, outcome)

    run()
    # One of each, whatever hypothesis chose: then every counter has something to count.
    every = [
        ["unknown", 1, "ok"],
        ["malformed", "absent", "bare"],
        ["malformed", "not-utf8", "deep"],
        ["duplicate", 0, "error"],
    ]
    assert client.calls([("Fake.Echo", {"value": 1, "junk": every})], 10) == [1]
    stats = client.codec.stats
    counted = {
        "unknown": stats.unknown,
        "duplicate": stats.duplicate,
        "late": stats.late,
        "malformed": client.codec.malformed,
    }
    assert counted == dict(fake.sent), (counted, fake.sent)
    assert min(counted.values()) >= 1 and counted["late"] == 1
    assert client.calls([("Fake.Echo", {"value": "still fine"})], 10) == ["still fine"]
