"""uvicorn for shiprail's app: long-polls answered at once when the server shuts down."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from shiprail.serve.hub import FlagHub

# Seconds uvicorn lets requests finish at shutdown; long-polls are released first, so this is ample.
GRACEFUL_SHUTDOWN_SECONDS = 2


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket for ``Server.run(sockets=[...])``; port 0 picks a free one. Raises OSError.

    ``host`` is an IPv4 or IPv6 address (``::1``, ``::``) or a name. Bound here rather than by
    ``socket.create_server``, which takes IPv4 only unless told, and words its errors at length.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as create_server: restart at once
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    # asyncio sets TCP_NODELAY only on sockets it creates itself; without it every kept-alive answer
    # (a long-poll's body) waits ~40 ms for the client's delayed ACK (Nagle). Accepted sockets inherit it.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def url(host: str, port: int) -> str:
    """The base URL of a server listening on ``host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Server(uvicorn.Server):
    """A uvicorn server whose shutdown first answers the SDK long-polls it holds (304, "nothing new").

    Without this, uvicorn waits for each held long-poll (up to a minute) until its graceful timeout
    and then cancels them, and SDKs see a dropped connection instead of an answer.
    """

    def __init__(self, app: FastAPI, root_path: str = "") -> None:
        """``root_path``: the path a reverse proxy serves the app under (it strips it), for the links
        and redirects the status pages write (``shiprail serve --root-path``)."""
        super().__init__(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                root_path=root_path,
            )
        )
        self.hub: FlagHub = app.state.hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.release_waiters()
        await super().shutdown(sockets)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, but the SIGTERM or Ctrl-C that stopped serve is not raised again once it has shut
        down: serve then exits 0, like `shiprail controller`, instead of dying of the signal (143, 130)."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


# The longest serve_in_thread waits for uvicorn to start.
START_TIMEOUT_SECONDS = 10.0


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", root_path: str = "") -> Iterator[str]:
    """Serve ``app`` in a thread of this process on a free port; yield its base URL; shut it down after.

    For tests and benchmarks that need serve's real HTTP stack next to the code that drives it.
    """
    sock = listen(host, 0)
    server = Server(app, root_path)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="shiprail-serve", daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        while not server.started:
            if not thread.is_alive() or time.monotonic() - started > START_TIMEOUT_SECONDS:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield url(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
