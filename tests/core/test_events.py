"""Small frozen values, the error tree and the thin public helpers around them."""

from __future__ import annotations

import dataclasses

import pytest

import amqprpc
import amqprpc.protocol
from amqprpc import (
    BrokerError,
    ConnectionLost,
    Json,
    ProtocolViolation,
    RemoteError,
    RPCError,
    RPCTimeout,
    Unroutable,
    UsageError,
)
from amqprpc._client import ClientProtocol
from amqprpc._proxy import ServiceProxy
from amqprpc.protocol import IGNORED, Ack, CallDone, CallState, Properties, Publish, Qos

# -- actions and events ---------------------------------------------------------------------


def test_publish_defaults_to_default_exchange_without_mandatory():
    publish = Publish(routing_key="q", properties=Properties(), body=b"")
    assert (publish.exchange, publish.mandatory) == ("", False)


def test_values_are_keyword_only_and_setup_actions_frozen():
    with pytest.raises(TypeError):
        Ack(1)  # type: ignore[misc]
    qos = Qos(prefetch_count=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        qos.prefetch_count = 4  # type: ignore[misc]


def test_ignored_is_a_named_value():
    assert IGNORED is amqprpc.protocol.IGNORED
    assert IGNORED is not None
    assert repr(IGNORED) == "<Ignored.IGNORED: 'IGNORED'>"


def test_call_done_result_value_or_error():
    assert CallDone(call_id=0, token="t", value=[1]).result() == [1]
    with pytest.raises(ConnectionLost):
        CallDone(call_id=0, token="t", error=ConnectionLost("gone")).result()


# -- the error tree -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [RemoteError, RPCTimeout, Unroutable, ConnectionLost, ProtocolViolation, BrokerError,
     UsageError, amqprpc.RegistrationError, amqprpc.EncodeError, amqprpc.MessageTooLarge],
)  # fmt: skip
def test_every_error_is_an_rpc_error(cls):
    assert issubclass(cls, RPCError)


def test_timeout_is_a_timeout_error():
    assert issubclass(RPCTimeout, TimeoutError)


def test_broker_error_carries_the_reply_code():
    error = BrokerError(406, "PRECONDITION_FAILED - inequivalent arg 'durable'")
    assert error.reply_code == 406
    assert error.reply_text.startswith("PRECONDITION_FAILED")
    assert str(error) == "406 PRECONDITION_FAILED - inequivalent arg 'durable'"


def test_remote_error_text_and_type():
    error = RemoteError("boom", "KeyError")
    assert (str(error), error.text, error.remote_type) == ("boom", "boom", "KeyError")
    assert RemoteError("x").remote_type is None


# -- client helpers -------------------------------------------------------------------------


def test_publish_failed_ends_only_that_call_as_unsent():
    proto: ClientProtocol[str] = ClientProtocol(
        request_queue="q", reply_queue="r", formatter=Json()
    )
    first = proto.start_call("Svc.A", 1, now=0.0, token="a")
    proto.start_call("Svc.B", 2, now=0.0, token="b")
    assert proto.publish_failed(first.call_id) is True
    assert proto.pending.state(first.call_id) is CallState.UNSENT
    assert proto.publish_failed(first.call_id) is False
    assert len(proto.pending) == 1
    assert proto.pending.stats.by_state == {CallState.UNSENT: 1}


def test_service_proxy_spells_methods_the_go_way():
    calls: list[tuple[str, object, float | None]] = []

    def call(method: str, arg: object, timeout: float | None) -> str:
        calls.append((method, arg, timeout))
        return "result"

    proxy = ServiceProxy("Users", call)
    assert proxy.get_user(1) == "result"
    assert proxy.GetUserID(2, timeout=1.5) == "result"
    assert proxy.mul.future(3) == "result"  # without a future callable, call is used
    assert calls == [
        ("Users.GetUser", 1, None),
        ("Users.GetUserID", 2, 1.5),
        ("Users.Mul", 3, None),
    ]
    assert proxy.get_user is proxy.get_user
    assert repr(proxy.get_user) == "<RemoteMethod Users.GetUser>"
    assert repr(proxy) == "<ServiceProxy Users>"


@pytest.mark.parametrize("attr", ["_secret", "__wrapped__", "_"])
def test_service_proxy_refuses_private_names(attr):
    proxy = ServiceProxy("Users", lambda m, a, t: None)
    with pytest.raises(AttributeError):
        getattr(proxy, attr)


def test_the_front_door_is_what_users_use():
    machinery = {"Ack", "Qos", "Consume", "DeclareQueue", "PendingTable", "CallState",
                 "Invoke", "Outcome", "Received", "ClientProtocol", "ServerProtocol"}  # fmt: skip
    assert not machinery & set(amqprpc.__all__)
    assert {"server_codec", "client_codec", "RPCError", "Json", "Registry"} <= set(amqprpc.__all__)
    assert {"server_codec", "client_codec"} <= set(dir(amqprpc))
    assert all(hasattr(amqprpc.protocol, name) for name in amqprpc.protocol.__all__)
    assert machinery <= set(amqprpc.protocol.__all__)


def test_unknown_package_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        amqprpc.no_such_thing  # noqa: B018
