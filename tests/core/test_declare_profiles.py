"""Queue profiles: the declaration each `declare=` makes, and what a refused one says."""

from __future__ import annotations

import pytest

from amqprpc import BrokerError, UsageError
from amqprpc.protocol import DeclareQueue, Qos, server_setup_op


def first_step(declare: str) -> object:
    return next(server_setup_op("q", prefetch=8, declare=declare))  # type: ignore[arg-type]


def test_each_profile_declares_as_documented() -> None:
    assert first_step("go") == DeclareQueue(queue="q")
    assert first_step("durable") == DeclareQueue(queue="q", durable=True)
    assert first_step("quorum") == DeclareQueue(
        queue="q", durable=True, arguments=(("x-queue-type", "quorum"),)
    )
    assert first_step("passive") == DeclareQueue(queue="q", passive=True)
    with pytest.raises(UsageError, match="declare must be one of go, durable, quorum, passive"):
        first_step("lazy")


def refused(declare: str, error: BrokerError) -> BrokerError:
    op = server_setup_op("q", prefetch=8, declare=declare)  # type: ignore[arg-type]
    next(op)
    with pytest.raises(BrokerError) as info:
        op.throw(error)
    return info.value


def test_a_denied_transient_queue_names_both_ways_out() -> None:
    error = refused("go", BrokerError(541, "INTERNAL_ERROR - Feature `transient_nonexcl_queues`"
                                           " is deprecated."))  # fmt: skip
    assert error.reply_code == 541
    assert "deprecated_features.permit.transient_nonexcl_queues = true" in error.reply_text
    assert "declare='durable'" in error.reply_text


def test_passive_and_mismatched_declarations_say_why() -> None:
    missing = refused("passive", BrokerError(404, "NOT_FOUND - no queue 'q'"))
    assert missing.reply_code == 404 and "never creates it" in missing.reply_text
    mismatch = refused("durable", BrokerError(406, "PRECONDITION_FAILED - inequivalent arg"))
    assert "declare='durable'" in mismatch.reply_text and "alike" in mismatch.reply_text
    other = BrokerError(403, "ACCESS_REFUSED")
    assert refused("go", other) is other


def test_prefetch_follows_the_declaration() -> None:
    op = server_setup_op("q", prefetch=8, declare="durable")
    next(op)
    assert op.send(None) == Qos(prefetch_count=8)
