"""A fault-injecting TCP proxy: sits between the library and the broker and can cut every
connection through it at once, leaving the shared broker untouched."""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from urllib.parse import urlparse, urlunparse


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker; `cut()` resets every connection through it.

    One thread owns every socket (a selector loop), so a cut is a clean reset (RST) with no
    thread left blocked on a closed socket.
    """

    def __init__(self, upstream_url: str) -> None:
        parsed = urlparse(upstream_url)
        self._parsed = parsed
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 5672)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._requests: list[tuple[str, threading.Event, list[int]]] = []
        self._lock = threading.Lock()
        self._running = True
        self.accepted = 0
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The broker URL, pointed at the proxy."""
        creds, at, _ = self._parsed.netloc.rpartition("@")
        return urlunparse(self._parsed._replace(netloc=f"{creds}{at}127.0.0.1:{self.port}"))

    def _loop(self) -> None:
        while self._running:
            for key, _ in self._selector.select(0.02):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peer:
                    self._forward(sock)
            with self._lock:
                requests, self._requests = self._requests, []
            for what, done, result in requests:
                result.append(self._reset_all())
                if what == "close":
                    self._running = False
                done.set()
        self._selector.unregister(self._listener)
        self._listener.close()
        self._selector.close()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self._upstream, 5)
        except OSError:
            client.close()
            return
        self.accepted += 1
        for sock in (client, upstream):
            sock.setblocking(True)
            self._selector.register(sock, selectors.EVENT_READ, None)
        self._peer[client] = upstream
        self._peer[upstream] = client

    def _forward(self, sock: socket.socket) -> None:
        other = self._peer[sock]
        try:
            data = sock.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock, reset=False)

    def _drop(self, sock: socket.socket, *, reset: bool) -> None:
        other = self._peer.pop(sock)
        self._peer.pop(other, None)
        for s in (sock, other):
            self._selector.unregister(s)
            if reset:  # linger 0: close() sends RST at once, as a dead network would
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def _reset_all(self) -> int:
        count = 0
        while self._peer:
            self._drop(next(iter(self._peer)), reset=True)
            count += 1
        return count

    def _request(self, what: str) -> int:
        done = threading.Event()
        result: list[int] = []
        with self._lock:
            self._requests.append((what, done, result))
        assert done.wait(10), "proxy loop did not answer"
        return result[0]

    def cut(self) -> int:
        """Reset every connection through the proxy (new ones are still accepted).

        Returns how many connections were cut.
        """
        return self._request("cut")

    def close(self) -> None:
        """Cut everything and stop."""
        if self._running:
            self._request("close")
        self._thread.join(5)
