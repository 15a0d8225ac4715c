"""Running SDKs against a real ``shiprail serve`` app: a weight change reaches them, a rollback takes all to 0%."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shiprail.clock import WallClock
from shiprail.routers import FlagRouter
from shiprail.sdk import Client
from shiprail.serve import SdkService, create_app
from shiprail.store import flags
from shiprail.store.db import Store
from tests.integration.serve.conftest import acknowledged_by_all
from tests.support.serving import serving

KEY = "sdk-key-shop"
SDKS = 5
KEYS = [f"user-{n}" for n in range(20_000)]


class Watched:
    """SDK clients and, per client, when (monotonic) it first applied each revision."""

    def __init__(self, url: str, n: int) -> None:
        self.applied: list[dict[int, float]] = [{} for _ in range(n)]
        self.changed = threading.Condition()
        self.clients = [Client(url, "shop", KEY, poll_wait=20, on_change=self._recorder(i)) for i in range(n)]

    def _recorder(self, i: int):  # type: ignore[no-untyped-def]
        def record(config: dict[str, object]) -> None:
            with self.changed:
                self.applied[i].setdefault(int(config["revision"]), time.monotonic())  # type: ignore[call-overload]
                self.changed.notify_all()

        return record

    def wait_all(self, revision: int, timeout_s: float = 10) -> float:
        """When the last client applied ``revision``."""
        with self.changed:
            assert self.changed.wait_for(lambda: all(revision in a for a in self.applied), timeout_s), self.applied
            return max(a[revision] for a in self.applied)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def sdks(store: Store, router: FlagRouter) -> Iterator[tuple[Watched, FlagRouter]]:
    with serving(create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})) as url:
        watched = Watched(url, SDKS)
        try:
            for client in watched.clients:
                assert client.wait_ready(10)
            # As below: the hub stores contacts at its next pass, and a weight published before then
            # counts no SDK. Clients built in milliseconds since they share one TLS context
            # ready before that pass (the test then failed two runs in three).
            in_contact(store, SDKS)
            yield watched, router
        finally:
            watched.close()


def in_contact(store: Store, n: int, timeout_s: float = 5) -> None:
    """Return once ``n`` SDKs of shop are stored as in contact (what the router counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with store.transaction() as s:
            seen = flags.contacts(s, "shop", datetime.now(UTC) - timedelta(seconds=60))
        if len(seen) >= n or time.monotonic() > deadline:
            assert len(seen) == n, seen
            return
        time.sleep(0.01)


def share(client: Client) -> float:
    return sum(client.variant(k) == "canary" for k in KEYS) / len(KEYS) * 100


def test_a_weight_change_reaches_every_sdk_and_a_rollback_takes_all_to_zero(
    sdks: tuple[Watched, FlagRouter],
) -> None:
    watched, router = sdks
    assert all(c.revision == 0 and c.variant("user-1") == "stable" for c in watched.clients)

    started = time.monotonic()
    router.set_weight(10)
    up = watched.wait_all(1) - started
    assert router.confirmation is not None and router.confirmation["confirmed"] is True
    assert router.confirmation["sdks"] == SDKS and router.confirmation["acknowledged"] == SDKS
    for client in watched.clients:
        assert client.version("user-1") in ("1.0.0", "2.0.0")
        assert abs(share(client) - 10) < 1
    # Every SDK puts each key in the same cohort.
    first = [watched.clients[0].variant(k) for k in KEYS[:2000]]
    assert all([c.variant(k) for k in KEYS[:2000]] == first for c in watched.clients[1:])

    started = time.monotonic()
    router.set_weight(0)
    confirmed = time.monotonic() - started
    down = watched.wait_all(2) - started
    assert all(share(c) == 0 for c in watched.clients)
    assert router.confirmation["confirmed"] is True and router.confirmation["revision"] == 2
    print(
        f"\npropagation to {SDKS} SDKs: up {up * 1000:.0f} ms, rollback {down * 1000:.0f} ms "
        f"(router confirmed in {confirmed * 1000:.0f} ms)"
    )
    # The goal is p99 under 1 s (bench/sdk.py --propagation measures it); here one change on a
    # busy CI machine must not take more than twice that (1.03 s was seen once, with the suite running
    # on both cores; a change that never arrives fails wait_all).
    assert up < 2.0
    assert down < 1.0
    assert confirmed < 2.0


def test_an_sdk_that_closed_is_not_waited_for(store: Store, router: FlagRouter) -> None:
    # A closed SDK stayed "in contact" for a minute: each weight change in that minute (a rollback
    # included) took the router's whole wait and was reported unconfirmed, naming the SDK gone.
    with serving(create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})) as url:
        staying, leaving = Client(url, "shop", KEY, poll_wait=20), Client(url, "shop", KEY, poll_wait=20)
        try:
            assert staying.wait_ready(10) and leaving.wait_ready(10)
            # The hub stores contacts at its next pass (every 0.05 s): a weight published before
            # that found no SDK in contact (the test failed about one run in three).
            in_contact(store, 2)
            router.set_weight(10)
            assert router.confirmation is not None and router.confirmation["sdks"] == 2
            leaving.close()
            router.set_weight(0)
            assert router.confirmation == acknowledged_by_all(2, 1)
        finally:
            staying.close()
            leaving.close()
