"""A look at a broker from outside the codecs, for `amqprpc doctor`: one pika connection of
its own, the server properties the broker sent, and queue declarations each on a channel of
their own (a refusal closes the channel it came on, and only that one).

Moves bytes and names errors, as the rest of the adapter does: what the answers mean is the
doctor's to say.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConnectionLost
from ._compat import server_properties
from ._connect import addresses, connected, connection_parameters
from ._link import map_exceptions

__all__ = ["BrokerProbe"]


class BrokerProbe:
    """A connection of its own to a broker, for looking at it; close() it after use."""

    def __init__(self, connection: Any, address: str) -> None:
        self.connection = connection
        self.address = address

    @classmethod
    def connect(cls, target: object) -> BrokerProbe:
        """Connect to a URL, or the first of a list of URLs that answers. Raises UsageError,
        ConnectionLost naming each address tried, or BrokerError (403, 530)."""
        parameters = connection_parameters(target)
        failures = []
        for one in parameters if isinstance(parameters, list) else [parameters]:
            address = addresses(one)
            try:
                return cls(connected(one, address), address)
            except ConnectionLost as exc:
                failures.append(f"{address}: {exc}")
        raise ConnectionLost("cannot connect: " + "; ".join(failures))

    def server_properties(self) -> dict[str, Any] | None:
        """The broker's server properties (`product`, `version`, ...) with str values for
        its strings, or None when the installed pika keeps them where we do not look."""
        properties = server_properties(self.connection)
        if properties is None:
            return None
        return {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                for k, v in properties.items()}  # fmt: skip

    def declare(
        self, queue: str, *, passive: bool = False, durable: bool = False,
        auto_delete: bool = False, arguments: dict[str, Any] | None = None,
    ) -> tuple[int, int]:  # fmt: skip
        """queue.declare on a fresh channel. Returns (messages ready, consumers). Raises
        BrokerError with the broker's reply code (404, 405, 406, ...; 541 when RabbitMQ 4
        closes the connection for a denied deprecated feature) or ConnectionLost."""
        with map_exceptions(f"declaring {queue!r}"):
            channel = self.connection.channel()
            ok = channel.queue_declare(
                queue, passive=passive, durable=durable, auto_delete=auto_delete,
                arguments=arguments,
            )  # fmt: skip
            if channel.is_open:
                channel.close()
        return ok.method.message_count, ok.method.consumer_count

    def delete(self, queue: str) -> None:
        """queue.delete on a fresh channel. Raises BrokerError or ConnectionLost."""
        with map_exceptions(f"deleting {queue!r}"):
            channel = self.connection.channel()
            channel.queue_delete(queue)
            channel.close()

    def close(self) -> None:
        """Close the connection, if it is still open."""
        with map_exceptions("closing"):
            if self.connection.is_open:
                self.connection.close()
