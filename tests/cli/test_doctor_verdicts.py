"""doctor's reading of the broker's answers, on a scripted probe (no broker): the 406 texts
RabbitMQ gives for inequivalent declarations, and the 541 that RabbitMQ 4.3 closes the
connection with for a transient non-exclusive queue."""

from __future__ import annotations

from typing import Any

import pytest

from amqprpc import BrokerError
from amqprpc.cli import _doctor


def inequivalent(name: str, received: str, current: str) -> BrokerError:
    text = (
        f"PRECONDITION_FAILED - inequivalent arg '{name}' for queue 'q' in vhost '/': "
        f"received {received} but current is {current}"
    )
    return BrokerError(406, f"declaring 'q': {text}")


class ScriptedProbe:
    """Answers each declaration with the next of `answers` (an error is raised)."""

    def __init__(self, *answers: BrokerError | None) -> None:
        self.answers = list(answers)
        self.declared: list[dict[str, Any]] = []

    def declare(self, queue: str, **flags: Any) -> tuple[int, int]:
        self.declared.append(flags)
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer
        return 0, 0

    def delete(self, queue: str) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("answers", "flags"),
    [
        ([None], {"durable": True, "auto_delete": False, "x-queue-type": "classic"}),
        (
            [inequivalent("durable", "'true'", "'false'"), None],
            {"durable": False, "auto_delete": False, "x-queue-type": "classic"},
        ),
        (
            [inequivalent("x-queue-type", "'classic'", "the value 'quorum' of type 'longstr'"),
             None],
            {"durable": True, "auto_delete": False, "x-queue-type": "quorum"},
        ),
        (
            [inequivalent("x-queue-type", "'classic'", "'stream'"), None],
            {"durable": True, "auto_delete": False, "x-queue-type": "stream"},
        ),
    ],
)  # fmt: skip
def test_flags_from_the_brokers_answers(answers: list[BrokerError | None], flags: dict) -> None:
    probe = ScriptedProbe(*answers)
    assert _doctor.queue_flags(probe, "q") == (flags, None)  # type: ignore[arg-type]
    assert len(probe.declared) == len(answers)
    assert all(not one.get("passive") for one in probe.declared)


def test_another_argument_leaves_the_type_unknown() -> None:
    probe = ScriptedProbe(inequivalent("x-message-ttl", "none", "the value '60000'"))
    flags, unknown = _doctor.queue_flags(probe, "q")  # type: ignore[arg-type]
    assert flags == {"durable": True, "auto_delete": False}
    assert unknown is not None and "'x-message-ttl'" in unknown


def test_a_refusal_other_than_406_stops_the_guessing() -> None:
    probe = ScriptedProbe(BrokerError(403, "ACCESS_REFUSED"))
    assert _doctor.queue_flags(probe, "q") == ({}, "403 ACCESS_REFUSED")  # type: ignore[arg-type]


def test_a_denied_transient_queue_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import amqprpc.sync._probe

    denied = BrokerError(541, "declaring: INTERNAL_ERROR - Feature `transient_nonexcl_queues` "
                         "is deprecated.")  # fmt: skip
    monkeypatch.setattr(
        amqprpc.sync._probe.BrokerProbe,
        "connect",
        classmethod(lambda cls, t: ScriptedProbe(denied)),
    )
    verdict = _doctor._transient_queues("amqp://127.0.0.1/")
    assert verdict.level == "warn"
    assert verdict.text.startswith("transient non-exclusive queues are denied")
    assert "deprecated_features.permit.transient_nonexcl_queues" in verdict.text
    assert verdict.line().startswith("warn transient")
