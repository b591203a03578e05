"""Property-based tests of the server side: the registry never resolves private or unregistered
names, and every handler exception becomes an error reply."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from amqprpc import Json, MsgPack, Registry, RemoteError
from amqprpc._envelope import ERROR_HEADER, ERROR_TYPE_HEADER
from amqprpc.protocol import CallDone, Handler, NotFound, Properties, Publish

from .helpers import REPLY_QUEUE, REQUEST_QUEUE, LoopbackPair
from .strategies import SETTINGS, error_texts

# -- the registry never resolves private or unregistered names ------------------------------


class Service:
    def mul(self, x: object) -> object:
        return x

    def get_user_id(self, x: object) -> object:
        return x

    def _secret(self, x: object) -> object:
        return x


REGISTRY = Registry()
REGISTRY.register(Service())
REGISTRY.register(lambda x: x, name="Other.Echo")
SERVED = {
    "Service.Mul",
    "Service.mul",
    "Service.GetUserId",
    "Service.get_user_id",
    "Other.Echo",
}

wire_names = st.text(alphabet="_.SeviceOthrMulgtsd", max_size=24) | st.sampled_from(
    sorted(SERVED | {"Service._secret", "Service.__init__", "Service.mul.__globals__"})
)


@SETTINGS
@given(wire_names)
def test_registry_resolves_only_registered_names(name):
    found = REGISTRY.lookup(name)
    if name in SERVED:
        assert isinstance(found, Handler)
    else:
        assert isinstance(found, NotFound)
        assert found.text.startswith("rpc: ")
        assert found.text.endswith(name)


@SETTINGS
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3), st.integers(0, 2))
def test_private_names_are_never_resolved(parts, index):
    parts[index % len(parts)] = "_" + parts[index % len(parts)]
    assert isinstance(REGISTRY.lookup(".".join(parts)), NotFound)


@SETTINGS
@given(st.text(max_size=20))
def test_registering_private_names_always_fails(suffix):
    registry = Registry()
    try:
        registry.register(lambda x: x, name="Svc._" + suffix)
    except ValueError:
        pass
    else:
        raise AssertionError("a private name was registered")
    assert len(registry) == 0


# -- a handler exception always becomes an error reply ---------------------------------------


class CustomError(Exception):
    pass


class NoTextError(Exception):
    def __str__(self) -> str:
        return ""


exception_types = st.sampled_from(
    [ValueError, KeyError, RuntimeError, ZeroDivisionError, OSError, CustomError, NoTextError]
)


@SETTINGS
@given(exception_types, error_texts, st.sampled_from([Json(), MsgPack()]), st.booleans())
def test_handler_exception_always_becomes_error_reply(exc_type, text, formatter, is_async):
    def fail(arg: object) -> None:
        raise exc_type(text)

    async def fail_async(arg: object) -> None:
        raise exc_type(text)

    registry = Registry()
    registry.register(fail_async if is_async else fail, name="Svc.Fail")
    pair = LoopbackPair(registry, formatter=formatter)
    started = pair.start("Svc.Fail", None)
    served = pair.serve(started.publish)
    reply = served.reply  # exactly one reply, whatever the exception said
    assert reply.routing_key == REPLY_QUEUE
    headers = reply.properties.headers
    assert headers is not None
    assert isinstance(headers[ERROR_HEADER], str)
    assert headers[ERROR_HEADER]
    assert headers[ERROR_TYPE_HEADER] == exc_type.__name__
    assert reply.body == formatter.pack({})
    assert pair.server.in_flight == 0
    done = pair.reply_to_client(reply)  # through the wire encoding: always sendable
    assert isinstance(done, CallDone)
    assert isinstance(done.error, RemoteError)
    assert done.error.remote_type == exc_type.__name__


@SETTINGS
@given(st.binary(max_size=64), st.sampled_from([Json(), MsgPack()]))
def test_server_answers_any_body(body, formatter):
    registry = Registry()
    registry.register(lambda arg: arg, name="Svc.Echo")
    pair = LoopbackPair(registry, formatter=formatter)
    properties = Properties(reply_to="Svc.Echo", correlation_id=REPLY_QUEUE, message_id="0")
    served = pair.serve(Publish(routing_key=REQUEST_QUEUE, properties=properties, body=body))
    reply = served.reply  # exactly one reply: the echo, or an error, never silence
    if served.invoke is None:
        assert reply.properties.headers is not None
        assert reply.properties.headers[ERROR_TYPE_HEADER] == "ProtocolViolation"
    else:
        assert reply.body == formatter.pack(served.invoke.arg)
    assert pair.server.in_flight == 0
