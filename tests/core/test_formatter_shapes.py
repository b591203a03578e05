"""Every shape of formatter the seed documented: the built-ins used through the class, a
class of plain one-argument functions or staticmethods passed as the class, and instances."""

from __future__ import annotations

from typing import Any

import pytest

import amqprpc
from amqprpc._client import client_protocol
from amqprpc._formatters import as_formatter, pack_body, unpack_body
from tests.shapes import SeedStyle, Static, WithSelf


@pytest.mark.parametrize("fmt", [amqprpc.Json, amqprpc.MsgPack])
def test_the_built_ins_work_through_the_class(fmt: Any) -> None:
    assert fmt.unpack(fmt.pack({"A": 1})) == {"A": 1}
    assert fmt().unpack(fmt().pack([1, "x"])) == [1, "x"]


def test_class_level_json_is_the_default_settings() -> None:
    assert amqprpc.Json.pack({"b": 1, "a": 2}) == b'{"b":1,"a":2}'
    assert amqprpc.Json(sort_keys=True).pack({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    with pytest.raises(amqprpc.EncodeError):
        amqprpc.Json.pack(float("nan"))
    with pytest.raises(amqprpc.ProtocolViolation):
        amqprpc.MsgPack.unpack(b"\xc1")


@pytest.mark.parametrize("shape", [SeedStyle, Static, WithSelf, WithSelf(), amqprpc.Json,
                                   amqprpc.MsgPack, amqprpc.Json(), amqprpc.MsgPack()])  # fmt: skip
def test_every_documented_shape_round_trips(shape: Any) -> None:
    formatter = as_formatter(shape)
    body = pack_body(formatter, {"A": 6, "B": 7})
    assert unpack_body(formatter, body) == {"A": 6, "B": 7}


def test_plain_function_classes_are_used_as_the_class_and_self_classes_are_instantiated() -> None:
    assert as_formatter(SeedStyle) is SeedStyle
    assert as_formatter(Static) is Static
    made = as_formatter(WithSelf)
    assert isinstance(made, WithSelf)
    assert isinstance(as_formatter(amqprpc.Json), amqprpc.Json)


def test_a_client_core_encodes_with_a_seed_style_class() -> None:
    proto = client_protocol("q", SeedStyle, unique="u")
    started = proto.start_call("S.M", {"A": 1}, now=0.0, token=None)
    assert started.publish.body == b'{"A":1}'


def test_an_instance_keeps_its_own_state() -> None:
    instance = WithSelf()
    formatter = as_formatter(instance)
    pack_body(formatter, 1)
    pack_body(formatter, 2)
    assert instance.packed == 2


def test_not_a_formatter_is_refused() -> None:
    class Nothing:
        pass

    with pytest.raises(amqprpc.UsageError):
        as_formatter(Nothing)


def test_subclasses_keep_their_overrides_and_may_call_the_base() -> None:
    class Upper(amqprpc.Json):
        def pack(self, obj: Any) -> bytes:
            return super().pack(obj.upper())

    class Explicit(amqprpc.Json):
        def pack(self, obj: Any) -> bytes:
            return amqprpc.Json.pack(self, [obj])

    upper = Upper()
    assert [upper.pack("a"), upper.pack("b")] == [b'"A"', b'"B"']  # every call, not the 1st
    assert Explicit().pack(1) == b"[1]"
    assert as_formatter(Upper).pack("c") == b'"C"'


def test_seed_functions_with_optional_arguments_are_used_on_the_class() -> None:
    class WithDefaults:
        def pack(obj, indent=None):  # type: ignore[no-untyped-def]
            return amqprpc.Json.pack(obj)

        def unpack(body):  # type: ignore[no-untyped-def]
            return amqprpc.Json.unpack(body)

    assert as_formatter(WithDefaults) is WithDefaults
    assert pack_body(as_formatter(WithDefaults), [1]) == b"[1]"
