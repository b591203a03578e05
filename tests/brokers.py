"""A private RabbitMQ node for tests that stop, restart or reconfigure a broker.

The shared broker (AMQPRPC_TEST_URL) must never be stopped, so such tests get a node of their
own: started by the test process as the current user (root in CI), in a temp dir, on ports
found free at run time, under a node name unique to the run. A stale node from a crashed run
therefore never collides with this one. It listens on 127.0.0.1 for AMQP and for AMQP over TLS,
with a self-signed CA and a certificate for `localhost` made here with the `openssl` CLI.

We run /usr/lib/rabbitmq/bin/rabbitmq-server directly: the wrapper in /usr/sbin switches to the
rabbitmq user, who cannot read our temp dir. HOME is the node's own dir, so the node and
rabbitmqctl share an Erlang cookie of their own, and RABBITMQ_CONF_ENV_FILE points at an empty
file, so /etc/rabbitmq/rabbitmq-env.conf (the shared broker's settings) is never read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO

import pika
import pika.exceptions

__all__ = ["BrokerStartError", "PrivateBroker"]

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
LOCALHOST = "127.0.0.1"


class BrokerStartError(RuntimeError):
    """The private node did not answer AMQP in time (or exited); the text ends with its log."""


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound, so the ports differ from one another.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.create_server((LOCALHOST, 0))) for _ in range(count)]
        return [s.getsockname()[1] for s in socks]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certificates(directory: Path) -> None:
    """A self-signed CA (ca.pem) and a server certificate for localhost (server.pem/.key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=amqprpc test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", "server.ext",
        "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip


class PrivateBroker:
    """One RabbitMQ node of the test session's own. `start()`, `stop()`, `restart()`.

    Its user and password are made up per run (the password is random, so tests can check it
    never leaks); `url` is plain AMQP, `tls_url` AMQP over TLS (trust `ca_file`, or use
    `ssl_context()`). Ports, node name and data stay the same across restarts, so clients
    reconnect to the same URL, but non-durable queues are gone after one.
    """

    user = "amqprpc-test"

    def __init__(
        self, directory: Path, *, start_timeout: float = 60.0, root: Path | None = None,
        config: str = "", user: str | None = None, password: str | None = None,
    ) -> None:  # fmt: skip
        self.dir = directory
        self.start_timeout = start_timeout
        # A node of another RabbitMQ release runs chrooted into `root` (tests/rabbitmq4.py);
        # `directory` lies inside it, and the node sees its paths from inside.
        self.root = root
        self.extra_config = config
        self.node = f"amqprpc-{uuid.uuid4().hex[:12]}@localhost"
        self.user = user or self.user
        self.password = password or secrets.token_hex(16)
        self.port, self.tls_port, self.dist_port = _free_ports(3)
        self.ca_file = directory / "ca.pem"
        self.log_file = directory / "log" / f"{self.node}.log"
        self._stdout = directory / "stdout.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._configured = False

    @property
    def url(self) -> str:
        """amqp:// URL of the node, with its credentials."""
        return f"amqp://{self.user}:{self.password}@{LOCALHOST}:{self.port}/"

    @property
    def tls_url(self) -> str:
        """amqps:// URL of the node's TLS listener (host `localhost`, as in its certificate)."""
        return f"amqps://{self.user}:{self.password}@localhost:{self.tls_port}/"

    @property
    def running(self) -> bool:
        """Whether the node's process is alive (it may still be booting)."""
        return self._process is not None and self._process.poll() is None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the node's CA (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _inside(self, path: Path) -> str:
        """`path` as the node sees it (from inside its root, when it has one)."""
        if self.root is None:
            return str(path)
        return "/" + str(path.relative_to(self.root))

    def _command(self, tool: str, *args: str) -> list[str]:
        binary = str(RABBITMQ_BIN / tool)
        return [binary, *args] if self.root is None else ["chroot", str(self.root), binary, *args]

    def _configure(self) -> None:
        make_certificates(self.dir)
        inside = self._inside(self.dir)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {LOCALHOST}:{self.port}\n"
            f"listeners.ssl.default = {LOCALHOST}:{self.tls_port}\n"
            f"ssl_options.cacertfile = {inside}/ca.pem\n"
            f"ssl_options.certfile = {inside}/server.pem\n"
            f"ssl_options.keyfile = {inside}/server.key\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            "loopback_users = none\n"
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
            + self.extra_config
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        self._configured = True

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        inside = self._inside(self.dir)
        env.update(
            HOME=inside,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONF_ENV_FILE=f"{inside}/rabbitmq-env.conf",
            RABBITMQ_CONFIG_FILE=f"{inside}/rabbitmq",
            RABBITMQ_ADVANCED_CONFIG_FILE=f"{inside}/advanced.config",
            RABBITMQ_ENABLED_PLUGINS_FILE=f"{inside}/enabled_plugins",
            RABBITMQ_MNESIA_BASE=f"{inside}/mnesia",
            RABBITMQ_LOG_BASE=f"{inside}/log",
            RABBITMQ_PID_FILE=f"{inside}/rabbitmq.pid",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def start(self) -> None:
        """Start the node and wait until it answers AMQP. A no-op when it runs already.

        Raises BrokerStartError (with the tail of its log) when it exits or does not answer
        within `start_timeout` seconds; the process is stopped first.
        """
        if self.running:
            return
        server = (self.root or Path("/")) / str(RABBITMQ_BIN / "rabbitmq-server").lstrip("/")
        for tool in (server, Path(shutil.which("openssl") or "openssl")):
            if not tool.is_file():
                raise BrokerStartError(
                    f"{tool} not found: tests that restart a broker start a private one "
                    "(`apt-get install rabbitmq-server openssl`)"
                )
        first_start = not self._configured
        for attempt in range(3):
            if not self._configured:
                self._configure()
            self._output = self._stdout.open("ab")
            self._process = subprocess.Popen(
                self._command("rabbitmq-server"),
                env=self._env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill if it will not stop
            )
            try:
                self._wait_until_answering()
                return
            except BrokerStartError as exc:
                self._kill()
                # A port found free was taken meanwhile (by some client's ephemeral port):
                # before the first start, ports may change; after it, clients rely on them.
                if not (first_start and "eaddrinuse" in str(exc) and attempt < 2):
                    raise
                self.port, self.tls_port, self.dist_port = _free_ports(3)
                self._configured = False
            except BaseException:
                self._kill()
                raise

    def _wait_until_answering(self) -> None:
        # Nothing tells us when the node is ready but the node itself: poll with pika.
        parameters = pika.URLParameters(self.url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 2
        parameters.stack_timeout = 5
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"RabbitMQ node {self.node} exited with {self._process.returncode} while "
                    f"starting\n{self.log_tail()}"
                )
            try:
                pika.BlockingConnection(parameters).close()
                return
            except pika.exceptions.AMQPError:
                pass
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"RabbitMQ node {self.node} did not answer on {LOCALHOST}:{self.port} "
                    f"within {self.start_timeout:g}s\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the node (`rabbitmqctl stop`, ~1 s) and wait for its process to end.

        Connections to it are closed by the broker (320 CONNECTION_FORCED). A no-op when it
        is not running. Falls back to killing its process group when it will not stop.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                subprocess.run(
                    self._command("rabbitmqctl", "-n", self.node, "stop"),
                    env=self._env(),
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=60,
                    check=True,
                )
                process.wait(30)
            except (subprocess.SubprocessError, OSError):
                self._kill()
        self._reap()

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run `rabbitmqctl -n NODE ARGS...` against this node (~1 s). Returns its output.

        Raises subprocess.CalledProcessError when it fails.
        """
        done = subprocess.run(
            self._command("rabbitmqctl", "-n", self.node, *args),
            env=self._env(), cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=timeout, check=True, text=True,
        )  # fmt: skip
        return done.stdout

    def kill(self) -> None:
        """Crash the node: SIGKILL to its process group. Its connections drop at once; it
        keeps its data, and `start()` brings it back."""
        self._kill()

    def restart(self) -> None:
        """Stop, then start: a broker restart (non-durable queues vanish)."""
        self.stop()
        self.start()

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)  # the group we made for it: script, erl, children
            process.wait(30)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait(30)
            self._process = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the node's log and console output, for failure messages."""
        parts = []
        for path in (self.log_file, self._stdout):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                text = [f"({exc})"]
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts)
