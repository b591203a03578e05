"""Property-based tests: stateful models of the pending table and of the client core over a
loopback server; every call ends exactly once."""

from __future__ import annotations

import collections

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from amqprpc import ConnectionLost, Json, MsgPack, Registry, RPCTimeout
from amqprpc.protocol import IGNORED, CallDone, CallState, PendingTable, Publish

from .helpers import LoopbackPair
from .strategies import STATEFUL

# -- the pending table, as a state machine ------------------------------------------------


class PendingMachine(RuleBasedStateMachine):
    """A model of PendingTable: outstanding id -> deadline, plus how each id ended."""

    def __init__(self) -> None:
        super().__init__()
        self.table: PendingTable[int] = PendingTable()
        self.now = 0.0
        self.outstanding: dict[int, float] = {}
        self.final: dict[int, CallState] = {}
        self.ends: collections.Counter[int] = collections.Counter()
        self.issued = 0
        self.expected_stats = collections.Counter[str]()

    def _ended(self, entry: object, state: CallState) -> None:
        assert entry is not IGNORED
        call_id = entry.call_id  # type: ignore[attr-defined]
        assert entry.state is state  # type: ignore[attr-defined]
        assert entry.token == call_id  # type: ignore[attr-defined]
        assert call_id in self.outstanding
        del self.outstanding[call_id]
        self.final[call_id] = state
        self.ends[call_id] += 1

    def _stray(self, call_id: int) -> None:
        final = self.final.get(call_id)
        if final is CallState.DONE:
            self.expected_stats["duplicate"] += 1
        elif final is not None:
            self.expected_stats["late"] += 1
        else:
            self.expected_stats["unknown"] += 1

    @rule(timeout=st.floats(min_value=0.001, max_value=100.0))
    def start(self, timeout):
        deadline = self.now + timeout
        entry = self.table.add(now=self.now, deadline=deadline, label="m", token=self.issued)
        assert entry.call_id == self.issued
        assert entry.state is CallState.PENDING
        self.outstanding[entry.call_id] = deadline
        self.issued += 1

    @rule(data=st.data())
    def resolve(self, data):
        call_id = data.draw(st.integers(min_value=0, max_value=self.issued + 2))
        result = self.table.resolve(call_id)
        if call_id in self.outstanding:
            self._ended(result, CallState.DONE)
        else:
            assert result is IGNORED  # late, duplicate or unknown: never raised
            self._stray(call_id)

    @rule(data=st.data())
    def cancel(self, data):
        call_id = data.draw(st.integers(min_value=0, max_value=self.issued + 2))
        result = self.table.cancel(call_id)
        if call_id in self.outstanding:
            self._ended(result, CallState.CANCELLED)
        else:
            assert result is IGNORED

    @rule(step=st.floats(min_value=0.0, max_value=50.0))
    def expire(self, step):
        self.now += step
        due = sorted((d, i) for i, d in self.outstanding.items() if d <= self.now)
        expired = self.table.expire(self.now)
        assert [(e.deadline, e.call_id) for e in expired] == due
        for entry in expired:
            self._ended(entry, CallState.TIMED_OUT)

    @precondition(lambda self: self.issued > 0)
    @rule()
    def fail_all(self):
        lost = self.table.fail_all()
        assert sorted(e.call_id for e in lost) == sorted(self.outstanding)
        for entry in lost:
            self._ended(entry, CallState.LOST)

    @invariant()
    def matches_model(self):
        assert len(self.table) == len(self.outstanding)
        assert {e.call_id for e in self.table} == set(self.outstanding)
        for call_id in range(self.issued):
            expected = CallState.PENDING if call_id in self.outstanding else self.final[call_id]
            assert self.table.state(call_id) is expected

    @invariant()
    def next_deadline_is_min_outstanding(self):
        expected = min(self.outstanding.values()) if self.outstanding else None
        assert self.table.next_deadline() == expected

    @invariant()
    def every_id_ends_at_most_once(self):
        assert all(count == 1 for count in self.ends.values())
        assert set(self.ends) == set(self.final)
        assert set(self.final).isdisjoint(self.outstanding)

    @invariant()
    def strays_are_counted(self):
        stats = self.table.stats
        assert stats.unknown == self.expected_stats["unknown"]
        assert stats.duplicate == self.expected_stats["duplicate"]
        assert stats.late == self.expected_stats["late"]
        assert sum(stats.by_state.values()) == len(self.final)

    def teardown(self):
        # Whatever happened, ending everything leaves nothing behind, each id ended once.
        self.fail_all()
        assert len(self.table) == 0
        assert self.table.next_deadline() is None
        assert set(self.final) == set(range(self.issued))
        assert all(count == 1 for count in self.ends.values())


PendingMachine.TestCase.settings = STATEFUL
TestPendingMachine = PendingMachine.TestCase


class ClientMachine(RuleBasedStateMachine):
    """The client core over a loopback server: every call gets exactly one CallDone."""

    @initialize(formatter=st.sampled_from([Json(), MsgPack()]))
    def setup(self, formatter):
        registry = Registry()
        registry.register(lambda arg: arg, name="Svc.Echo")
        self.pair = LoopbackPair(registry, formatter=formatter, now=0.0)
        self.replies: dict[int, Publish] = {}  # call id -> the server's reply, kept to resend
        self.deadlines: dict[int, float] = {}  # the model: pending call id -> deadline
        self.ends: collections.Counter[int] = collections.Counter()

    def _end(self, call_id: int) -> None:
        del self.deadlines[call_id]
        self.ends[call_id] += 1

    @rule(arg=st.integers(-1000, 1000), timeout=st.floats(0.01, 10.0))
    def start(self, arg, timeout):
        started = self.pair.start("Svc.Echo", arg, timeout=timeout)
        assert started.call_id == len(self.replies)
        self.deadlines[started.call_id] = started.deadline
        self.replies[started.call_id] = self.pair.serve(started.publish).reply

    @precondition(lambda self: bool(self.replies))
    @rule(data=st.data())
    def receive(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.replies)))
        done = self.pair.reply_to_client(self.replies[call_id])
        if call_id in self.deadlines:
            assert isinstance(done, CallDone)
            assert done.call_id == call_id
            assert done.error is None
            self._end(call_id)
        else:
            assert done is IGNORED  # late or duplicate: never raised

    @precondition(lambda self: bool(self.replies))
    @rule(data=st.data())
    def cancel(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.replies)))
        pending = call_id in self.deadlines
        assert self.pair.client.cancel(call_id) is pending
        if pending:
            self._end(call_id)

    @rule(step=st.floats(0.0, 5.0))
    def expire(self, step):
        self.pair.now += step
        due = {i for i, d in self.deadlines.items() if d <= self.pair.now}
        expired = self.pair.client.expire(self.pair.now)
        assert {d.call_id for d in expired} == due
        for done in expired:
            assert isinstance(done.error, RPCTimeout)
            self._end(done.call_id)

    @rule()
    def fail_all(self):
        lost = self.pair.client.fail_all("gone")
        assert {d.call_id for d in lost} == set(self.deadlines)
        for done in lost:
            assert isinstance(done.error, ConnectionLost)
            self._end(done.call_id)

    @invariant()
    def each_call_ends_once_and_deadline_is_min(self):
        if not hasattr(self, "pair"):
            return
        assert all(count == 1 for count in self.ends.values())
        expected = min(self.deadlines.values()) if self.deadlines else None
        assert self.pair.client.next_deadline() == expected
        assert len(self.pair.client.pending) == len(self.deadlines)

    def teardown(self):
        if hasattr(self, "pair"):
            self.fail_all()
            assert set(self.ends) == set(self.replies)


ClientMachine.TestCase.settings = STATEFUL
TestClientMachine = ClientMachine.TestCase
