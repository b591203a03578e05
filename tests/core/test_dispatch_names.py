"""The Registry: what a server exposes, under which wire names, and what lookup resolves, with
net/rpc's texts for what it does not."""

from __future__ import annotations

import functools

import pytest

from amqprpc import Registry, go_name, wire_name
from amqprpc._naming import is_private
from amqprpc.protocol import Handler, NotFound

from .dispatch_helpers import SECRET, SERVER_NAMES, Server


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
