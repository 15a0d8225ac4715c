"""A TCP proxy on 127.0.0.1 that can stall or cut what it forwards: a database that stops answering."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class Proxy:
    """A TCP proxy on 127.0.0.1 to PostgreSQL that can stop forwarding: it then reads nothing more
    from the client and sends it nothing, but keeps the connection open, as a server whose host
    stalled would. Its receive buffer is small, so a client's large message fills it at once."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.blackhole = threading.Event()
        self.refusing = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()  # the server is down: the connection ends at once
                continue
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while not self.closed.is_set():
            if self.blackhole.is_set():
                time.sleep(0.05)
                continue
            try:
                if not select.select([src], [], [], 0.05)[0]:
                    continue
                data = src.recv(65536)
            except (OSError, ValueError):  # ValueError: select on a socket closed meanwhile
                return
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        """Close every connection through the proxy now (a server restart, a failover)."""
        for sock in self.sockets[1:]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        del self.sockets[1:]
