"""uvicorn for shiprail's app, shut down gracefully.

On SIGTERM: no new connection is taken, the SDK long-polls held are answered at once ("nothing new"),
the other requests under way get up to the grace (``serve --shutdown-grace``) to finish and answer as
usual, and those still under way then are cut off: answered 503 and logged in one line each.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shiprail import defaults
from shiprail.durations import format_duration
from shiprail.serve.hub import FlagHub

log = logging.getLogger(__name__)

# The answer to a request cut off at shutdown. It may have been stored all the same (the database
# finishes what it was given): a retry with the same Idempotency-Key stores it once.
CUT_OFF_DETAIL = (
    "shiprail serve shut down before this request finished; send it again (with the same Idempotency-Key "
    "it is stored once)"
)


class InFlight:
    """``app``, keeping the HTTP requests under way, so that shutdown can cut off those that outlast its grace.

    One cut off is answered 503 (``Retry-After: 1``, when its answer had not begun) and returns as a
    request that ended, instead of dying of the cancellation: uvicorn answered 500 and logged a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._under_way: dict[asyncio.Task[Any], tuple[str, float]] = {}  # task -> ("POST /path", started)
        self._cut: set[asyncio.Task[Any]] = set()
        self.any_cut_off = False
        """Whether shutdown cut off a request: its work may still be running in a worker thread."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        answering = False

        async def tracked(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        self._under_way[task] = (f"{scope['method']} {scope['path']}", asyncio.get_running_loop().time())
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if task not in self._cut:
                raise
            task.uncancel()  # cut off by us, not by the loop going away: this request ends here
            if not answering:
                answer = JSONResponse({"detail": CUT_OFF_DETAIL}, status_code=503, headers={"Retry-After": "1"})
                await answer(scope, receive, send)
        finally:
            del self._under_way[task]
            self._cut.discard(task)

    def cut_off(self, grace_s: float) -> None:
        """On the event loop, the grace over: cancel every request still under way, logging one line for each."""
        now = asyncio.get_running_loop().time()
        for request, started in self.cut_all():
            log.warning(
                "%s cut off at shutdown: still under way after %.1fs, past --shutdown-grace %s; answered 503",
                request,
                now - started,
                format_duration(grace_s),
            )

    def cut_all(self) -> list[tuple[str, float]]:
        """On the event loop: cancel every request still under way and not cut off yet (each is answered
        503); theirs ``("POST /path", started)``, for the caller to log. Not one cut off already: cancelled
        again while it sends its 503, it would die of that."""
        cut = [task for task in self._under_way if task not in self._cut]
        for task in cut:
            self._cut.add(task)
            self.any_cut_off = True
            task.cancel()
        return [self._under_way[task] for task in cut]

    async def ended(self, timeout_s: float) -> None:
        """Return once the requests under way (those cut off, answering 503) have ended, or after ``timeout_s``."""
        if self._under_way:
            await asyncio.wait(list(self._under_way), timeout=timeout_s)


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
    """A uvicorn server whose shutdown first answers the SDK long-polls it holds (304, "nothing new"),
    then lets the other requests under way finish within ``shutdown_grace_s`` and cuts off the rest.

    Without the first, uvicorn waits for each held long-poll (up to a minute) until its graceful
    timeout and then cancels them, and SDKs see a dropped connection instead of an answer.
    """

    def __init__(
        self,
        app: FastAPI,
        root_path: str = "",
        shutdown_grace_s: float = defaults.SERVE_SHUTDOWN_GRACE_SECONDS,
        stop_waiting: Callable[[], object] = lambda: None,
    ) -> None:
        """``root_path``: the path a reverse proxy serves the app under (it strips it), for the links
        and redirects the status pages write (``shiprail serve --root-path``). ``stop_waiting``: called
        once the grace is over, to end the store's waits that outlast it (``Store.stop_lock_waits``)."""
        self.requests = InFlight(app)
        super().__init__(
            uvicorn.Config(
                self.requests,
                log_level="warning",
                lifespan="on",
                # No timeout of uvicorn's: past it, it cancels the requests into a 500 and a traceback.
                timeout_graceful_shutdown=None,
                root_path=root_path,
            )
        )
        self.hub: FlagHub = app.state.hub
        self.hurry: threading.Event = app.state.hurry
        self.shutdown_grace_s = shutdown_grace_s
        self.stop_waiting = stop_waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped_at_once = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.release_waiters()
        deadline = asyncio.get_running_loop().call_later(self.shutdown_grace_s, self._grace_over)
        try:
            if self.force_exit:  # a second Ctrl-C before the shutdown began
                self._stop_at_once()
            await super().shutdown(sockets)
            if self.force_exit:
                # uvicorn, forced, leaves the requests it cancels to die with a traceback each, and the
                # app's lifespan to be cancelled (a traceback more) as the event loop closes.
                await self.requests.ended(FORCED_ANSWER_SECONDS)
                await self.lifespan.shutdown()  # the app, hurried, waits for none of its threads
        finally:
            deadline.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """uvicorn's: SIGTERM or Ctrl-C shuts down gracefully; a Ctrl-C while it does stops at once."""
        forced = self.should_exit and sig == signal.SIGINT and not self.force_exit
        super().handle_exit(sig, frame)
        if forced and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_at_once)

    def _stop_at_once(self) -> None:
        """On the event loop, at a second Ctrl-C: cut off every request under way and end the store's
        waits, the app's shutdown waits for no thread; one line says what was cut off."""
        if self._stopped_at_once:
            return
        self._stopped_at_once = True
        now = asyncio.get_running_loop().time()
        cut = self.requests.cut_all()
        self.hurry.set()
        self.stop_waiting()
        if cut:
            shown = ", ".join(f"{request} ({now - started:.1f}s)" for request, started in cut)
            log.warning(
                "second Ctrl-C: stopping at once; cut off %d request%s under way, answered 503: %s",
                len(cut),
                "" if len(cut) == 1 else "s",
                shown,
            )
        else:
            log.warning("second Ctrl-C: stopping at once; no request was under way")

    def _grace_over(self) -> None:
        """Cut off the requests still under way, and end the waits for the store of what still runs: the
        threads of those requests, and the last writes at shutdown (SQLite's lock held elsewhere)."""
        self.requests.cut_off(self.shutdown_grace_s)
        self.stop_waiting()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, but the SIGTERM or Ctrl-C that stopped serve is not raised again once it has shut
        down: serve then exits 0, like `shiprail controller`, instead of dying of the signal (143, 130).

        SIGHUP (the terminal serve runs in closed, an ssh session dropped) shuts it down gracefully
        too, where it killed serve on the spot: its requests under way were dropped, its leases held
        until they expired. Not when SIGHUP is ignored (``nohup``)."""
        main = threading.current_thread() is threading.main_thread()
        hangup = signal.getsignal(signal.SIGHUP) if main else signal.SIG_IGN
        if hangup != signal.SIG_IGN:
            signal.signal(signal.SIGHUP, self.handle_exit)
        try:
            with super().capture_signals():
                yield
                self._captured_signals.clear()
        finally:
            if hangup != signal.SIG_IGN:
                signal.signal(signal.SIGHUP, signal.SIG_DFL if hangup is None else hangup)


# After a second Ctrl-C, the longest shutdown waits for the requests it cut off to send their 503.
FORCED_ANSWER_SECONDS = 1.0

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
