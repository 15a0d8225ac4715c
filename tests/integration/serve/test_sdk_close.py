"""``Client.close()`` returns within ``SDK_CLOSE_SECONDS`` whatever the client is doing, on real sockets.

LaunchDarkly's and Unleash's clients close promptly: an app's shutdown (a deploy, a scale-down, a
worker recycled) must not wait on a serve that is down, hung or unreachable.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import uvicorn
from starlette.types import Receive, Scope, Send

from shiprail.clock import WallClock
from shiprail.defaults import SDK_CLOSE_SECONDS
from shiprail.routers import FlagRouter
from shiprail.sdk import Client
from shiprail.serve import SdkService, create_app
from shiprail.serve.server import listen
from shiprail.serve.server import url as base_url
from shiprail.store.db import Store
from tests.support.serving import serving

KEY = "sdk-key-shop"
CONFIG = {
    "service": "shop",
    "revision": 1,
    "release": "r",
    "stable": "1.0.0",
    "canary": "2.0.0",
    "weight": 10,
    "salt": "r",
}
# close() on a machine whose two cores run other tests too: its budget and a margin for scheduling.
CLOSE_LIMIT_S = SDK_CLOSE_SECONDS + 0.25


def timed_close(client: Client) -> float:
    started = time.monotonic()
    client.close()
    return time.monotonic() - started


@contextmanager
def full_backlog() -> Iterator[int]:
    """A port on 127.0.0.1 whose listener accepts nothing and whose queue is full: a connect hangs,
    as to a host that drops packets (its SYN is never answered)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)  # the handshakes complete (queue full) before the SDK's SYN arrives
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextmanager
def hung_serve() -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 that answers the first config request and then never answers
    anything (a serve stuck on its store): the long-poll, the outcome posts and the leave all hang."""
    answered = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not answered.is_set() and scope["method"] == "GET":
            answered.set()
            body = json.dumps(CONFIG).encode()
            headers = [(b"content-type", b"application/json"), (b"etag", b'"1"')]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await asyncio.sleep(3600)  # cancelled when the server is forced to exit

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield base_url("127.0.0.1", sock.getsockname()[1])
    finally:
        server.should_exit = server.force_exit = True
        thread.join(5)
        sock.close()


@contextmanager
def serve_at_10(store: Store, router: FlagRouter) -> Iterator[str]:
    """A real serve for shop, whose config names both versions (weight 10); its base URL."""
    router.set_weight(10)
    with serving(create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})) as url:
        yield url


def test_close_returns_within_its_budget_in_every_state(store: Store, router: FlagRouter) -> None:
    timings: dict[str, float] = {}
    with serve_at_10(store, router) as url:
        # Ready, its long-poll held by serve.
        client = Client(url, "shop", KEY, poll_wait=20)
        assert client.wait_ready(5)
        client.record("stable", True, 0.01)
        time.sleep(0.2)
        timings["long-poll held by serve"] = timed_close(client)
        assert client.dropped == 0
        stopped = Client(url, "shop", KEY, poll_wait=20)
        assert stopped.wait_ready(5)
    # serve has stopped: the client retries with backoff.
    time.sleep(0.7)
    timings["serve stopped, in backoff"] = timed_close(stopped)

    with full_backlog() as port:
        connecting = Client(f"http://127.0.0.1:{port}", "shop", KEY)
        connecting.record("1.0.0", True, 0.01)
        time.sleep(0.3)
        # Its first fetch, its outcome post and its leave would each wait out a 5 s connect timeout.
        timings["connecting (SYN unanswered), outcomes pending"] = timed_close(connecting)

    with hung_serve() as url:
        hung = Client(url, "shop", KEY, poll_wait=20)
        assert hung.wait_ready(5)
        hung.record("stable", True, 0.01)
        time.sleep(1.5)  # the flusher's post now hangs with the batch
        hung.record("canary", True, 0.01)
        timings["serve hung: long-poll, a post under way, outcomes pending"] = timed_close(hung)

    print()
    for state, seconds in timings.items():
        print(f"close() {seconds * 1000:6.0f} ms  {state}")
    assert all(seconds < CLOSE_LIMIT_S for seconds in timings.values()), timings


def test_close_from_an_on_change_callback_closes_the_client(store: Store, router: FlagRouter) -> None:
    # An app closing its client when a config arrives (on_change, or OpenFeature's api.shutdown() in a
    # PROVIDER_CONFIGURATION_CHANGED handler, both on the poll thread) got `RuntimeError: cannot join
    # current thread`: the error went to the log, and the client's connections stayed open.
    closed: list[float] = []
    errors: list[BaseException] = []
    client: Client | None = None

    def on_change(config: dict[str, object]) -> None:
        assert client is not None
        started = time.monotonic()
        try:
            client.close()
        except BaseException as exc:  # what close() raised is what the test reports
            errors.append(exc)
        closed.append(time.monotonic() - started)

    with serve_at_10(store, router) as url:
        client = Client(url, "shop", KEY, poll_wait=20, on_change=on_change, start=False)
        client.record("1.0.0", True, 0.01)
        client._start_threads()
        assert client.wait_ready(5)
        client._threads[0].join(5)
        assert errors == [] and len(closed) == 1 and closed[0] < CLOSE_LIMIT_S
        assert not client._threads[0].is_alive()
        assert client._http is not None and client._http.is_closed
        assert client.dropped == 0


def test_outcomes_recorded_after_close_are_counted_as_dropped(store: Store, router: FlagRouter) -> None:
    # Requests still finishing during an app's shutdown recorded outcomes after close(): they sat in
    # the pending batch for ever, never posted, and `dropped` said nothing of them.
    with serve_at_10(store, router) as url:
        client = Client(url, "shop", KEY, poll_wait=20)
        assert client.wait_ready(5)
        client.record("stable", True, 0.01)
        client.close()
        # close() posts the outcome before it within its budget (SDK_CLOSE_SECONDS); on a loaded
        # machine that post may miss it and count as dropped too: only the two after it are this test's.
        closed_with = client.dropped
        assert closed_with in (0, 1)
        client.record("canary", False, 0.2)
        client.record("1.0.0", True, 0.01)
    assert client.dropped == closed_with + 2
    assert client.pending_metrics() == {"client": client.client_id, "versions": {}}
