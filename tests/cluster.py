"""A RabbitMQ cluster of private nodes on this machine, for failover tests.

Three `PrivateBroker` nodes of the host's RabbitMQ, each with its own ports and directory,
share an Erlang cookie and a user; the second and third join the first. A node can be
killed (SIGKILL: a crash, its clients see the connection drop) and started again, when it
rejoins the cluster from its own data. The shared broker is never touched.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
from pathlib import Path

from tests.brokers import PrivateBroker

__all__ = ["REPORT", "Cluster"]

REPORT: list[str] = []  # lines for the end of the test session's output (failover figures)


class Cluster:
    """`size` private nodes clustered together. `start()`, `stop()`, `kill(i)`, `revive(i)`."""

    def __init__(self, directory: Path, *, size: int = 3) -> None:
        self.password = secrets.token_hex(16)
        self.cookie = secrets.token_hex(20)
        self.nodes = []
        for index in range(size):
            node_dir = directory / f"node{index}"
            node_dir.mkdir(parents=True)
            self.nodes.append(PrivateBroker(node_dir, password=self.password))

    @property
    def urls(self) -> list[str]:
        """Every node's amqp:// URL, in node order (the order clients try them)."""
        return [node.url for node in self.nodes]

    def start(self) -> None:
        """Start every node (at once), then join the others to the first. ~20 s."""
        for node in self.nodes:
            cookie = node.dir / ".erlang.cookie"  # HOME is the node's dir: one cookie for all
            cookie.write_text(self.cookie)
            os.chmod(cookie, 0o400)
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(PrivateBroker.start, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        running = first.ctl("cluster_status", "--formatter", "json")
        for node in self.nodes:
            assert node.node in running, running

    def stop(self) -> None:
        """Stop every node that runs (the last first, so that the first one stops last)."""
        for node in reversed(self.nodes):
            node.stop()

    def kill(self, index: int) -> None:
        """Crash node `index` (SIGKILL to its process group): its connections drop at once."""
        self.nodes[index].kill()

    def revive(self, index: int) -> None:
        """Start node `index` again after `kill`; it rejoins the cluster from its data."""
        self.nodes[index].start()

    def ctl(self, *args: str) -> str:
        """`rabbitmqctl ARGS...` on the first running node."""
        node = next(node for node in self.nodes if node.running)
        return node.ctl(*args)

    def leader(self, queue: str) -> int:
        """The index of the node that leads quorum queue `queue`."""
        for line in self.ctl("list_queues", "name", "leader", "--no-table-headers", "-q")\
                .splitlines():  # fmt: skip
            name, _, leader = line.partition("\t")
            if name == queue:
                return next(i for i, node in enumerate(self.nodes) if node.node == leader.strip())
        raise LookupError(f"no queue {queue!r}")

    def connected_to(self, queue: str) -> set[int]:
        """The indexes of the nodes whose connections consume `queue`."""
        consumers = self.ctl("list_consumers", "queue_name", "channel_pid", "-q",
                             "--no-table-headers")  # fmt: skip
        found = set()
        for line in consumers.splitlines():
            name, _, channel = line.partition("\t")
            if name == queue:
                found |= {i for i, node in enumerate(self.nodes) if f"<{node.node}." in channel}
        return found
