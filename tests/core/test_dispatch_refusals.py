"""The Registry's refusals: what it will not register (RegistrationError), and that a refused
registration leaves the registry as it was."""

from __future__ import annotations

import pytest

import amqprpc
from amqprpc import RegistrationError, Registry
from amqprpc.protocol import NotFound

from .dispatch_helpers import Server

# -- refusals: RegistrationError, and nothing registered ----------------------------------


class ZeroArgs:
    def ok(self, x: object) -> object:
        return x

    def ping(self) -> str:
        return "pong"


class TwoArgs:
    def ok(self, x: object) -> object:
        return x

    def add(self, a: int, b: int) -> int:
        return a + b


class Clash:
    def mul(self, x: object) -> object:
        return x

    def Mul(self, x: object) -> object:
        return x


class OnlyPrivate:
    def _hidden(self, x: object) -> object:
        return x


def _one(x: object) -> object:
    return x


def _two(a: object, b: object) -> object:
    return a


def _zero() -> None:
    return None


@pytest.mark.parametrize(
    ("target", "name"),
    [
        (Server, None),  # the class, not an instance
        (ZeroArgs(), None),
        (TwoArgs(), None),
        (Clash(), None),
        (OnlyPrivate(), None),
        (_two, "Two"),
        (_zero, "Zero"),
        (_one, None),  # its own name is private
        (_one, "_One"),
        (_one, "Svc._one"),
        (_one, ""),
        (abs, ""),  # an explicit empty name is refused, not replaced by "abs"
        (_one, "Svc."),
        (_one, ".One"),
        (_one, "a..b"),
        (_one, "x" * 256),
        (Server(), ""),
        (Server(), "_Server"),
        (lambda: None, "Lambda"),
    ],
)
def test_bad_registrations_raise_and_register_nothing(target, name):
    registry = Registry()
    with pytest.raises(RegistrationError):
        registry.register(target, name=name)
    assert len(registry) == 0
    assert registry.names() == []
    assert "Server.Mul" not in registry
    assert isinstance(registry.lookup("Server.Mul"), NotFound)


@pytest.mark.parametrize("target", [42, "text", [1, 2], {"a": 1}, None, 1.5])
def test_a_builtin_value_is_refused_by_name(target):
    # An int has public methods (as_integer_ratio, ...): it would be served as "int.*".
    registry = Registry()
    with pytest.raises(RegistrationError, match=f"not {type(target).__name__} "):
        registry.register(target)
    assert len(registry) == 0


def test_registration_error_is_a_usage_error():
    assert issubclass(RegistrationError, amqprpc.UsageError)
    assert issubclass(RegistrationError, ValueError)


def test_duplicate_registration_raises_and_keeps_the_first():
    registry = Registry()
    registry.register(Server())
    before = registry.names()
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(Server())
    with pytest.raises(RegistrationError):
        registry.register(_one, name="Server.Mul")
    with pytest.raises(RegistrationError):
        registry.register(_one, name="Server.mul")  # an alias counts too
    assert registry.names() == before


def test_failed_instance_registration_adds_no_method():
    registry = Registry()
    with pytest.raises(RegistrationError):
        registry.register(TwoArgs())
    assert "TwoArgs.Ok" not in registry
    assert registry.lookup("TwoArgs.Ok") == NotFound(text="rpc: can't find service TwoArgs.Ok")


def test_partial_failure_of_a_later_registration_keeps_earlier_ones():
    registry = Registry()
    registry.register(_one, name="One")
    with pytest.raises(RegistrationError):
        registry.register(TwoArgs())
    assert registry.names() == ["One"]
