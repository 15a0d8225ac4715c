"""SDKs cut off from a real ``shiprail serve`` retry with capped, jittered exponential backoff.

The waits are drawn from an injected random source and recorded instead of slept: no test sleeps.
"""

from __future__ import annotations

import random

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
