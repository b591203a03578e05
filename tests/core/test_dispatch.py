"""The Registry: what a server exposes, under which wire names, and net/rpc's texts."""

from __future__ import annotations

import functools

import pytest

import amqprpc
from amqprpc import RegistrationError, Registry, go_name, wire_name
from amqprpc._naming import is_private
from amqprpc.protocol import Handler, NotFound

SECRET = "top secret"


class Server:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def mul(self, args: dict[str, int]) -> int:
        self.calls.append(args)
        return args["A"] * args["B"]

    def get_user(self, user_id: int) -> str:
        return f"user {user_id}"

    @wire_name("GetUserID")
    def get_user_id(self, name: str) -> int:
        return len(name)

    async def sleep(self, args: object) -> bool:
        return True

    def Echo(self, arg: object) -> object:
        return arg

    def with_default(self, arg: object, extra: int = 0) -> object:
        return arg

    def _secret(self, arg: object) -> str:
        return SECRET

    @property
    def value(self) -> int:
        raise AssertionError("properties are never evaluated")

    class Nested:
        pass

    limit = 10


SERVER_NAMES = [
    "Server.Echo",
    "Server.GetUser",
    "Server.GetUserID",
    "Server.Mul",
    "Server.Sleep",
    "Server.WithDefault",
]


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.register(Server())
    return registry


def test_instance_methods_get_go_names(registry):
    assert sorted(registry.names()) == SERVER_NAMES
    assert len(registry) == len(SERVER_NAMES)
    for name in SERVER_NAMES:
        handler = registry.lookup(name)
        assert isinstance(handler, Handler)
        assert handler.name == name


def test_register_returns_canonical_names():
    assert sorted(Registry().register(Server())) == SERVER_NAMES


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("Server.mul", "Server.Mul"),
        ("Server.get_user", "Server.GetUser"),
        ("Server.get_user_id", "Server.GetUserID"),
        ("Server.sleep", "Server.Sleep"),
        ("Server.with_default", "Server.WithDefault"),
    ],
)
def test_snake_case_alias_resolves_to_the_same_handler(registry, alias, canonical):
    handler = registry.lookup(alias)
    assert isinstance(handler, Handler)
    assert handler == registry.lookup(canonical)
    assert handler.name == canonical
    assert alias in registry
    assert alias not in registry.names()


def test_wire_name_overrides_the_go_spelling(registry):
    assert registry.lookup("Server.GetUserId") == NotFound(
        text="rpc: can't find method Server.GetUserId"
    )
    handler = registry.lookup("Server.GetUserID")
    assert isinstance(handler, Handler)
    assert handler.func("abcd") == 4


def test_handlers_are_bound_methods():
    server = Server()
    registry = Registry()
    registry.register(server)
    handler = registry.lookup("Server.Mul")
    assert isinstance(handler, Handler)
    assert handler.func({"A": 6, "B": 7}) == 42
    assert server.calls == [{"A": 6, "B": 7}]


def test_async_handlers_are_marked(registry):
    assert {name for name in SERVER_NAMES if registry.lookup(name).is_async} == {"Server.Sleep"}


def test_service_name_override():
    registry = Registry()
    assert "Arith.Mul" in registry.register(Server(), name="Arith")
    assert isinstance(registry.lookup("Arith.Mul"), Handler)
    assert registry.lookup("Server.Mul") == NotFound(text="rpc: can't find service Server.Mul")


def test_register_function_under_its_name():
    def double(x: int) -> int:
        return 2 * x

    registry = Registry()
    assert registry.register(double) == ["double"]
    handler = registry.lookup("double")
    assert isinstance(handler, Handler)
    assert handler.func(21) == 42
    assert handler.is_async is False


def test_register_function_with_name_override():
    registry = Registry()
    assert registry.register(abs, name="Math.Abs") == ["Math.Abs"]
    handler = registry.lookup("Math.Abs")
    assert isinstance(handler, Handler)
    assert handler.func(-3) == 3
    assert registry.lookup("Math.Nope") == NotFound(text="rpc: can't find method Math.Nope")


def test_register_function_with_wire_name():
    @wire_name("Users.GetUserID")
    def get_user_id(name: str) -> int:
        return len(name)

    registry = Registry()
    assert registry.register(get_user_id) == ["Users.GetUserID"]
    assert get_user_id("ab") == 2  # the decorator returns the function itself


def test_async_function_and_partial_and_callable_object():
    async def fetch(x: object) -> object:
        return x

    def add(a: int, b: int) -> int:
        return a + b

    registry = Registry()
    registry.register(fetch)
    registry.register(functools.partial(add, 1), name="Math.Inc")
    registry.register(functools.partial(fetch), name="Async.Fetch")
    handlers = {name: registry.lookup(name) for name in registry.names()}
    assert {name: h.is_async for name, h in handlers.items()} == {
        "fetch": True,
        "Math.Inc": False,
        "Async.Fetch": True,
    }
    assert handlers["Math.Inc"].func(41) == 42


def test_registry_is_not_global():
    first, second = Registry(), Registry()
    first.register(Server())
    assert len(second) == 0
    assert "Server.Mul" not in second


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


# -- lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        "Server._secret",
        "Server.__class__",
        "Server.__init__",
        "Server.__dict__",
        "Server.mul.__globals__",
        "Server.Mul.__globals__",
        "Server.value",
        "Server.Value",
        "Server.Nested",
        "Server.limit",
        "Server.calls",
        "Server.",
        ".Mul",
        "__init__",
        "",
        None,
    ],
)
def test_lookup_never_resolves_unregistered_names(registry, method):
    assert isinstance(registry.lookup(method), NotFound)
    assert method not in registry


@pytest.mark.parametrize(
    ("method", "text"),
    [
        ("Nope.Mul", "rpc: can't find service Nope.Mul"),
        ("Server.Nope", "rpc: can't find method Server.Nope"),
        ("Server.mul.X", "rpc: can't find service Server.mul.X"),  # split at the last dot
        ("Server.Mul.X", "rpc: can't find service Server.Mul.X"),
        ("server.Mul", "rpc: can't find service server.Mul"),  # case-sensitive
        ("Server.MUL", "rpc: can't find method Server.MUL"),
        ("Server._secret", "rpc: can't find method Server._secret"),
        ("Server.__class__", "rpc: can't find method Server.__class__"),
        ("Mul", "rpc: service/method request ill-formed: Mul"),
        ("", "rpc: service/method request ill-formed: "),
        (None, "rpc: service/method request ill-formed: "),
    ],
)
def test_net_rpc_texts(registry, method, text):
    assert registry.lookup(method) == NotFound(text=text)


def test_ill_formed_with_empty_name_ends_in_colon_space(registry):
    found = registry.lookup(None)
    assert isinstance(found, NotFound)
    assert found.text.endswith(": ")


def test_a_registered_private_attribute_is_still_unreachable():
    server = Server()
    registry = Registry()
    registry.register(server)
    for method in ("Server._secret", "Server.Secret", "Server.secret"):
        found = registry.lookup(method)
        assert isinstance(found, NotFound)
        assert SECRET not in found.text


# -- naming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("python", "go"),
    [
        ("mul", "Mul"),
        ("get_user", "GetUser"),
        ("get_user_id", "GetUserId"),
        ("GetUserID", "GetUserID"),
        ("ServeHTTP", "ServeHTTP"),
        ("x", "X"),
        ("Get_user", "GetUser"),
        ("mul2", "Mul2"),
    ],
)
def test_go_name(python, go):
    assert go_name(python) == go


@pytest.mark.parametrize(
    ("name", "private"),
    [("_x", True), ("Svc._x", True), ("_Svc.x", True), ("Svc.x_", False), ("Svc.X", False)],
)
def test_is_private(name, private):
    assert is_private(name) is private


def test_builtin_without_signature_is_registered_unchecked():
    registry = Registry()
    assert registry.register(vars, name="Debug.Vars") == ["Debug.Vars"]
    handler = registry.lookup("Debug.Vars")
    assert isinstance(handler, Handler)
    assert handler.is_async is False
