"""The pending-call table of one client: call number -> deadline, state, token.

Owns every call's state and the only code that changes it. A call is PENDING from `add()`
until exactly one of: a reply (`resolve`), its deadline (`expire`), `cancel`, a publish that
never left (`unsent`), or the connection going away (`fail_all`). Its entry leaves the table
on that transition, so nothing stays behind whatever way a call ends. Replies for calls that
are not pending are counted as unknown, duplicate or late, and ignored, never raised. Time is
an input; no clock, no I/O, no threads.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ._events import IGNORED, Ignored

__all__ = ["CallState", "Entry", "PendingStats", "PendingTable"]

T = TypeVar("T")

_UINT64_LIMIT = 1 << 64


class CallState(enum.Enum):
    """Where a call is in its life; every state but PENDING is final."""

    PENDING = "pending"
    DONE = "done"  # a reply (success or error) or a basic.return ended it
    TIMED_OUT = "timed out"
    CANCELLED = "cancelled"  # the caller stopped waiting (a cancelled task, an interrupt)
    UNSENT = "unsent"  # the publish never left: the link failed to send it
    LOST = "lost"  # the connection or channel went away, or the client closed


# The whole state machine. A call is PENDING while it is in the table and leaves it on its one
# transition, so PENDING is the only state with ways out: trigger -> the final state. A trigger
# for a call that is not in the table does not apply (e.g. a reply after a timeout).
_TRANSITIONS = {
    "reply": CallState.DONE,
    "expire": CallState.TIMED_OUT,
    "cancel": CallState.CANCELLED,
    "unsent": CallState.UNSENT,
    "fail": CallState.LOST,
}


class Entry(Generic[T]):
    """One call in the table; read-only outside this module."""

    __slots__ = ("call_id", "deadline", "label", "started", "state", "token")

    def __init__(self, call_id: int, started: float, deadline: float, label: str, token: T):
        self.call_id = call_id
        self.started = started
        self.deadline = deadline
        self.label = label
        self.token = token
        self.state = CallState.PENDING

    def __repr__(self) -> str:
        return f"<Entry {self.call_id} {self.label} {self.state.value} deadline={self.deadline}>"


@dataclass(slots=True)
class PendingStats:
    """Counters of replies that matched no pending call, and of calls by their final state."""

    unknown: int = 0  # an id this table never issued
    duplicate: int = 0  # a second reply for a call that already got one
    late: int = 0  # a reply for a call that timed out, was cancelled or was lost
    ended: dict[str, int] = field(default_factory=dict)  # trigger -> calls it ended

    @property
    def by_state(self) -> dict[CallState, int]:
        """How many calls reached each final state."""
        return {_TRANSITIONS[trigger]: count for trigger, count in self.ended.items()}


class PendingTable(Generic[T]):
    """Pending calls of one reply queue, numbered from 0 like Go's `rpc.Client`."""

    def __init__(self, *, first_id: int = 0, remember: int = 1024) -> None:
        self._next_id = first_id % _UINT64_LIMIT
        self._issued = 0
        self._entries: dict[int, Entry[T]] = {}
        self._heap: list[tuple[float, int]] = []
        # Recently ended calls and their final state, to tell duplicates from late replies.
        self._ended: dict[int, CallState] = {}
        self._remember = remember
        self.stats = PendingStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._entries.values()))

    def state(self, call_id: int) -> CallState | None:
        """The state of a pending or recently ended call; None if unknown or forgotten."""
        entry = self._entries.get(call_id)
        return entry.state if entry is not None else self._ended.get(call_id)

    def deadline(self, call_id: int) -> float | None:
        """The deadline of a pending call; None when it is not pending."""
        entry = self._entries.get(call_id)
        return entry.deadline if entry is not None else None

    def add(self, *, now: float, deadline: float, label: str, token: T) -> Entry[T]:
        """Start a call that must end by `deadline`. Returns its entry (with its call number)."""
        call_id = self._next_id
        self._next_id = (call_id + 1) % _UINT64_LIMIT
        self._issued += 1
        entry = Entry(call_id, now, deadline, label, token)
        self._entries[call_id] = entry
        heapq.heappush(self._heap, (deadline, call_id))
        return entry

    def resolve(self, call_id: int) -> Entry[T] | Ignored:
        """A reply arrived for `call_id`. Returns the ended entry, or IGNORED (counted)."""
        entry = self._entries.get(call_id)
        if entry is None:
            self._count_stray(call_id)
            return IGNORED
        self._end(entry, "reply")
        return entry

    def cancel(self, call_id: int) -> Entry[T] | Ignored:
        """The caller gave up on `call_id`. Returns the ended entry, or IGNORED if not pending."""
        entry = self._entries.get(call_id)
        if entry is None:
            return IGNORED
        self._end(entry, "cancel")
        return entry

    def unsent(self, call_id: int) -> Entry[T] | Ignored:
        """The publish of `call_id` failed. Returns the ended entry, or IGNORED if not pending."""
        entry = self._entries.get(call_id)
        if entry is None:
            return IGNORED
        self._end(entry, "unsent")
        return entry

    def expire(self, now: float) -> list[Entry[T]]:
        """End every call whose deadline is at or before `now`. Returns them, oldest first."""
        expired = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, call_id = heapq.heappop(heap)
            entry = self._entries.get(call_id)
            if entry is not None:
                self._end(entry, "expire")
                expired.append(entry)
        return expired

    def fail_all(self) -> list[Entry[T]]:
        """End every pending call as LOST (connection gone, client closed). Returns them."""
        lost = list(self._entries.values())
        for entry in lost:
            self._end(entry, "fail")
        self._heap.clear()
        return lost

    def next_deadline(self) -> float | None:
        """The earliest deadline among pending calls, or None when there are none."""
        heap = self._heap
        while heap and heap[0][1] not in self._entries:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _end(self, entry: Entry[T], trigger: str) -> None:
        entry.state = _TRANSITIONS[trigger]
        del self._entries[entry.call_id]
        ended_by = self.stats.ended
        ended_by[trigger] = ended_by.get(trigger, 0) + 1
        ended = self._ended
        ended[entry.call_id] = entry.state
        if len(ended) > self._remember:
            del ended[next(iter(ended))]
        # Deadlines of calls that ended early stay in the heap until popped; rebuild it when
        # they outnumber live ones, so memory follows the number of pending calls.
        if len(self._heap) > 2 * len(self._entries) + 1024:
            self._heap = [(e.deadline, e.call_id) for e in self._entries.values()]
            heapq.heapify(self._heap)

    def _count_stray(self, call_id: int) -> None:
        final = self._ended.get(call_id)
        if final is CallState.DONE:
            self.stats.duplicate += 1
        elif final is not None or self._was_issued(call_id):
            self.stats.late += 1
        else:
            self.stats.unknown += 1

    def _was_issued(self, call_id: int) -> bool:
        # Ids are issued in order from the first one; an id behind the counter (within the
        # range issued so far) was ours once, even if it is too old to be remembered.
        distance = (self._next_id - call_id) % _UINT64_LIMIT
        return 0 < distance <= self._issued
