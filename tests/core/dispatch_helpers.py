"""The service the Registry tests register: every kind of attribute a class can have, and the
wire names it is served under."""

from __future__ import annotations

from amqprpc import wire_name

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
