"""SDKs cut off from a real ``shiprail serve`` retry with capped, jittered exponential backoff.

The waits are drawn from an injected random source and recorded instead of slept: no test sleeps.
"""

from __future__ import annotations

import random
import threading
import time

from shiprail.clock import WallClock
from shiprail.sdk import Client
from shiprail.sdk.client import next_retry_delay
from shiprail.serve import SdkService, create_app
from shiprail.store.db import Store
from tests.support.serving import serving

KEY = "sdk-key-shop"
RETRIES = 8


class RecordedStop:
    """A client's stop event whose waits are recorded, not slept; set after ``retries`` waits."""

    def __init__(self, retries: int) -> None:
        self.waits: list[float] = []
        self.retries = retries

    def is_set(self) -> bool:
        return len(self.waits) >= self.retries

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return self.is_set()

    def set(self) -> None:
        self.retries = 0


def test_sdks_cut_off_by_a_serve_restart_do_not_retry_in_lockstep(store: Store) -> None:
    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    with serving(app) as url:
        clients = [Client(url, "shop", KEY, poll_wait=20, start=False) for _ in range(3)]
        for client in clients:
            assert client.poll_once() == 200
    # serve is gone: each client's loop finds it refusing connections, and backs off.
    waits = []
    for seed, client in enumerate(clients):
        stop = RecordedStop(RETRIES)
        client._stop = stop  # type: ignore[assignment]
        client._retry_random = random.Random(seed).random
        client._poll_loop()
        waits.append(stop.waits)
        assert client.ready and client.revision == 0  # the last config is kept meanwhile
        client.close()
    # Three apps, three schedules: no two retry at the same instant.
    for n in range(RETRIES):
        assert len({round(w[n], 9) for w in waits}) == 3, waits
    for seed, drawn in enumerate(waits):
        expected = random.Random(seed)
        assert drawn == [next_retry_delay(n, expected.random) for n in range(1, RETRIES + 1)]


def test_sdks_whose_long_polls_a_stopping_serve_lets_go_do_not_reconnect_at_one_instant(store: Store) -> None:
    # At shutdown serve answers every long-poll it holds at once (304, nothing new): each SDK asked
    # again straight away, all in the same instant — onto the other serves behind the load balancer
    # in a rolling restart. Each now pauses a jittered 0.25-0.5 s first.
    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    clients: list[Client] = []
    stops = [RecordedStop(1) for _ in range(3)]
    loops: list[threading.Thread] = []
    with serving(app) as url:
        for seed, stop in enumerate(stops):
            client = Client(url, "shop", KEY, poll_wait=20, start=False)
            assert client.poll_once() == 200
            client._stop = stop  # type: ignore[assignment]
            client._retry_random = random.Random(seed).random
            clients.append(client)
            loops.append(threading.Thread(target=client._poll_loop, daemon=True))
        for loop in loops:
            loop.start()
        deadline = time.monotonic() + 5
        while len(app.state.hub._seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # until serve holds the three long-polls
    for loop in loops:
        loop.join(5)
    first = [stop.waits[0] for stop in stops]
    assert first == [next_retry_delay(1, random.Random(seed).random) for seed in range(3)], first
    assert len(set(first)) == 3 and all(0.25 <= wait <= 0.5 for wait in first)
    for client in clients:
        client.close()
