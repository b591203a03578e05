"""What the ServerProtocol tests share: the `Test` service, request deliveries, and a server
whose owed acks come out with each answer."""

from __future__ import annotations

from amqprpc import Json, Registry
from amqprpc.protocol import (
    Action,
    Delivery,
    Invoke,
    Outcome,
    Properties,
    Publish,
    Received,
    ServerProtocol,
)

from .helpers import REPLY_QUEUE


class EmptyError(Exception):
    def __str__(self) -> str:
        return ""


class Test:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def div(self, args: dict[str, int]) -> dict[str, int]:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def echo(self, arg: object) -> object:
        return arg

    def fail(self, kind: str) -> None:
        if kind == "empty":
            raise EmptyError()
        if kind == "blank":
            raise KeyError()
        raise ValueError(kind)

    def nan(self, arg: object) -> float:
        return float("nan")

    async def sleep(self, args: dict[str, int]) -> bool:
        return args["Ms"] >= 0

    async def async_fail(self, arg: object) -> None:
        raise RuntimeError("async boom")


def make_registry() -> Registry:
    registry = Registry()
    registry.register(Test())
    return registry


def request(
    body: bytes = b"{}",
    *,
    method: str | None = "Test.Echo",
    reply_queue: str | None = REPLY_QUEUE,
    call_id: str | None = "0",
    tag: int = 1,
) -> Delivery:
    properties = Properties(reply_to=method, correlation_id=reply_queue, message_id=call_id)
    return Delivery(properties=properties, body=body, delivery_tag=tag)


class AckingServer(ServerProtocol):
    """A ServerProtocol whose owed acks come out with each answer, as an adapter that sends
    them at once would perform them (batching itself is tested in test_acks.py)."""

    def receive(self, delivery: Delivery) -> Received:
        received = super().receive(delivery)
        if received.invoke is not None:
            return received
        return Received(actions=(*received.actions, *self.flush_acks()))

    def finish(self, invoke: Invoke, outcome: Outcome) -> tuple[Action, ...]:
        return (*super().finish(invoke, outcome), *self.flush_acks())


def server(formatter: object = None, **kwargs: object) -> ServerProtocol:
    return AckingServer(registry=make_registry(), formatter=formatter or Json(), **kwargs)  # type: ignore[arg-type]


def error_of(publish: Publish) -> tuple[object, object]:
    headers = publish.properties.headers or {}
    return headers.get("error"), headers.get("error_type")
