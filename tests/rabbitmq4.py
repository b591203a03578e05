"""RabbitMQ 4 nodes for the broker tier, from the Debian 13 chroot `.ci/rabbitmq4` builds.

This machine's own RabbitMQ is Debian 12's 3.10; Debian 13 ships 4.0.5. A node of it runs
chrooted (tests/brokers.py `PrivateBroker(root=...)`) on ports of its own, with its data in a
fresh directory inside the chroot, and the host's epmd.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.brokers import PrivateBroker

__all__ = ["ROOT", "STRICT_4_3", "new_node"]

ROOT = Path(os.environ.get("AMQPRPC_RABBITMQ4_ROOT", "/var/cache/amqprpc/trixie"))
# RabbitMQ 4.3 denies this deprecated feature by default; 4.0 with it denied stands for 4.3.
STRICT_4_3 = "deprecated_features.permit.transient_nonexcl_queues = false\n"


def new_node(*, config: str = "") -> PrivateBroker:
    """A RabbitMQ 4 node, not yet started, whose user is guest/guest like the shared broker's
    (tests publish `user_id="guest"`). Raises RuntimeError naming the fix when the chroot is
    missing or not mounted."""
    server = ROOT / "usr/lib/rabbitmq/bin/rabbitmq-server"
    if not server.is_file() or not (ROOT / "proc/self").exists():
        raise RuntimeError(
            f"no RabbitMQ 4 chroot at {ROOT}: run `.ci/rabbitmq4` (as root) to build and mount "
            'it (its tests skip without it, and fail in CI)'
        )
    directory = ROOT / "tmp" / f"amqprpc-{uuid.uuid4().hex[:12]}"
    directory.mkdir(parents=True)
    return PrivateBroker(directory, root=ROOT, config=config, user="guest", password="guest")
