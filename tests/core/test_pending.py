"""The pending-call table, driven directly with its states asserted (h11 test_state style)."""

from __future__ import annotations

import pytest

from amqprpc._pending import PendingStats
from amqprpc.protocol import IGNORED, CallState, PendingTable


def make(count: int = 3, *, now: float = 0.0, timeout: float = 10.0) -> PendingTable[str]:
    table: PendingTable[str] = PendingTable()
    for i in range(count):
        table.add(now=now, deadline=now + timeout + i, label=f"Test.M{i}", token=f"t{i}")
    return table


def test_ids_count_from_zero_in_decimal_like_go():
    table: PendingTable[str] = PendingTable()
    entries = [table.add(now=0.0, deadline=1.0, label="Test.Mul", token="t") for _ in range(12)]
    assert [e.call_id for e in entries] == list(range(12))
    assert str(entries[10].call_id) == "10"
    assert len(table) == 12


def test_new_entry_is_pending_with_what_it_was_given():
    table: PendingTable[str] = PendingTable()
    entry = table.add(now=5.0, deadline=7.5, label="Test.Mul", token="tok")
    assert (entry.call_id, entry.started, entry.deadline) == (0, 5.0, 7.5)
    assert (entry.label, entry.token, entry.state) == ("Test.Mul", "tok", CallState.PENDING)
    assert table.state(0) is CallState.PENDING
    assert list(table) == [entry]
    assert "pending" in repr(entry)


def test_ids_wrap_at_uint64():
    table: PendingTable[str] = PendingTable(first_id=2**64 - 1)
    first = table.add(now=0.0, deadline=1.0, label="a", token="a")
    second = table.add(now=0.0, deadline=1.0, label="b", token="b")
    assert (first.call_id, second.call_id) == (2**64 - 1, 0)


def test_resolve_ends_call_once_and_removes_it():
    table = make()
    entry = table.resolve(1)
    assert entry is not IGNORED
    assert entry.call_id == 1
    assert entry.token == "t1"
    assert entry.state is CallState.DONE
    assert table.state(1) is CallState.DONE
    assert len(table) == 2
    assert [e.call_id for e in table] == [0, 2]
    assert table.resolve(1) is IGNORED
    assert table.stats.duplicate == 1
    assert table.stats.by_state == {CallState.DONE: 1}


def test_cancel_ends_call_once_and_removes_it():
    table = make()
    entry = table.cancel(0)
    assert entry is not IGNORED
    assert entry.state is CallState.CANCELLED
    assert len(table) == 2
    assert table.cancel(0) is IGNORED
    assert table.cancel(99) is IGNORED
    assert table.resolve(0) is IGNORED  # a reply after the caller gave up is late
    assert table.stats.late == 1
    assert table.stats.by_state == {CallState.CANCELLED: 1}


def test_expire_ends_due_calls_oldest_first():
    table: PendingTable[str] = PendingTable()
    for deadline in (3.0, 1.0, 2.0, 9.0):
        table.add(now=0.0, deadline=deadline, label="m", token=str(deadline))
    assert table.expire(0.5) == []
    expired = table.expire(3.0)  # a deadline equal to now has passed
    assert [e.deadline for e in expired] == [1.0, 2.0, 3.0]
    assert [e.call_id for e in expired] == [1, 2, 0]
    assert all(e.state is CallState.TIMED_OUT for e in expired)
    assert len(table) == 1
    assert table.expire(3.0) == []  # each call ends once
    assert table.resolve(1) is IGNORED
    assert table.stats.late == 1
    assert table.stats.by_state == {CallState.TIMED_OUT: 3}


def test_expire_skips_calls_that_already_ended():
    table = make(3)
    table.resolve(0)
    table.cancel(1)
    expired = table.expire(1e9)
    assert [e.call_id for e in expired] == [2]
    assert len(table) == 0


def test_fail_all_ends_every_pending_call_as_lost():
    table = make(4)
    table.resolve(2)
    lost = table.fail_all()
    assert sorted(e.call_id for e in lost) == [0, 1, 3]
    assert all(e.state is CallState.LOST for e in lost)
    assert len(table) == 0
    assert list(table) == []
    assert table.next_deadline() is None
    assert table.fail_all() == []
    assert table.expire(1e9) == []
    assert table.resolve(0) is IGNORED
    assert table.stats.late == 1
    assert table.stats.by_state == {CallState.DONE: 1, CallState.LOST: 3}


def test_unknown_ids_are_counted_and_ignored():
    table = make(2)
    assert table.resolve(2) is IGNORED  # not yet issued
    assert table.resolve(10**6) is IGNORED
    assert table.resolve(2**64 - 1) is IGNORED
    assert table.stats == PendingStats(unknown=3)
    assert len(table) == 2
    assert table.state(2) is None


def test_late_reply_for_a_forgotten_call_is_still_late_not_unknown():
    table: PendingTable[str] = PendingTable(remember=2)
    for _ in range(5):
        entry = table.add(now=0.0, deadline=1.0, label="m", token="t")
        table.cancel(entry.call_id)
    assert table.state(0) is None  # forgotten (only the last two are remembered)
    assert table.state(4) is CallState.CANCELLED
    assert table.resolve(0) is IGNORED
    assert table.stats.late == 1
    assert table.stats.unknown == 0


def test_next_deadline_is_the_minimum_and_skips_ended_calls():
    table: PendingTable[str] = PendingTable()
    assert table.next_deadline() is None
    for deadline in (5.0, 2.0, 8.0, 3.0):
        table.add(now=0.0, deadline=deadline, label="m", token="t")
    assert table.next_deadline() == 2.0
    table.resolve(1)  # deadline 2.0
    assert table.next_deadline() == 3.0
    table.cancel(3)  # deadline 3.0
    assert table.next_deadline() == 5.0
    table.expire(5.0)
    assert table.next_deadline() == 8.0
    table.resolve(2)
    assert table.next_deadline() is None


def test_each_trigger_leads_to_its_own_final_state():
    table = make(4)  # deadlines 10, 11, 12, 13
    assert table.resolve(0) is not IGNORED
    assert table.cancel(1) is not IGNORED
    assert [e.call_id for e in table.expire(12.0)] == [2]
    assert [e.call_id for e in table.fail_all()] == [3]
    assert [table.state(i) for i in range(4)] == [
        CallState.DONE,
        CallState.CANCELLED,
        CallState.TIMED_OUT,
        CallState.LOST,
    ]
    # Final states are final: no trigger moves them again.
    for call_id in range(4):
        assert table.resolve(call_id) is IGNORED
        assert table.cancel(call_id) is IGNORED
    assert table.expire(1e9) == []
    assert table.fail_all() == []
    assert table.state(0) is CallState.DONE
    assert table.stats.duplicate == 1
    assert table.stats.late == 3


def test_heap_stays_bounded_with_many_resolved_calls():
    table: PendingTable[str] = PendingTable()
    for _ in range(100_000):
        entry = table.add(now=0.0, deadline=60.0, label="m", token="t")
        assert table.resolve(entry.call_id) is entry
    assert len(table) == 0
    assert len(table._heap) <= 1100
    assert len(table._ended) <= 1024
    assert table.stats.by_state == {CallState.DONE: 100_000}


def test_heap_stays_bounded_with_many_calls_in_flight():
    table: PendingTable[str] = PendingTable()
    ids = [table.add(now=0.0, deadline=60.0, label="m", token="t").call_id for _ in range(20_000)]
    for call_id in ids:
        table.resolve(call_id)
    assert len(table) == 0
    assert len(table._heap) <= 1100
    assert table.next_deadline() is None


@pytest.mark.parametrize("end", ["resolve", "cancel", "expire", "fail_all"])
def test_every_way_of_ending_removes_the_entry(end):
    table = make(1)
    if end == "resolve":
        table.resolve(0)
    elif end == "cancel":
        table.cancel(0)
    elif end == "expire":
        table.expire(100.0)
    else:
        table.fail_all()
    assert len(table) == 0
    assert list(table) == []
    assert table.next_deadline() is None
    assert sum(table.stats.by_state.values()) == 1
