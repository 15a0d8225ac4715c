"""The flag router against a real store: what a release's first weight may publish."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shiprail.clock import WallClock
from shiprail.routers import FlagRouter, FlagRouterConfig, RouterError
from shiprail.store import flags
from shiprail.store.db import Store


def router(store: Store, release: str, version: str, baseline: str) -> FlagRouter:
    return FlagRouter(
        FlagRouterConfig(type="flag"),
        store=store,
        clock=WallClock(),
        service="shop",
        release=release,
        version=version,
        baseline=baseline,
        ack_wait_s=0,
    )


def left_by(store: Store, release: str, stable: str, canary: str, weight: float) -> int:
    published = flags.publish(
        store,
        service="shop",
        release=release,
        stable=stable,
        canary=canary,
        weight=weight,
        salt=release,
        at=datetime.now(UTC),
    )
    return published.revision


@pytest.mark.parametrize(
    ("left", "serves"),
    [
        (("shop-1.1.0", "1.0.0", "1.1.0", 100), "1.1.0 to everyone (release shop-1.1.0 left it at 100%)"),
        (("shop-1.2.0", "1.1.0", "1.2.0", 0), "1.1.0 to everyone (release shop-1.2.0 left it at 0%)"),
    ],
)
def test_a_first_weight_whose_baseline_is_not_what_everyone_runs_is_refused(
    store: Store, left: tuple[str, str, str, float], serves: str
) -> None:
    # Everyone ran 1.1.0; a plan still naming 1.0.0 as its baseline published stable 1.0.0 at its
    # first step, and 99 % of the users went back to 1.0.0 (version()) as its canary took 1 %.
    revision = left_by(store, *left)
    stale = router(store, "shop-1.3.0", "1.3.0", "1.0.0")
    with pytest.raises(RouterError) as refused:
        stale.set_weight(1)
    assert str(refused.value) == (
        f"the flag config of shop serves {serves}, not this release's baseline 1.0.0: publishing it would move "
        "every user from 1.1.0 to 1.0.0; roll it back (`shiprail release rollback shop-1.3.0`) and release 1.3.0 "
        "with a plan whose baseline is 1.1.0"
    )
    with store.transaction() as s:
        assert flags.read(s, "shop").revision == revision
    # Its rollback: nobody has its canary, and publishing its baseline at 0 % would move everyone too.
    stale.set_weight(0)
    assert stale.current_weight() == 0
    with store.transaction() as s:
        assert flags.read(s, "shop").revision == revision
    fresh = router(store, "shop-1.3.1", "1.3.1", "1.1.0")
    fresh.set_weight(1)
    with store.transaction() as s:
        published = flags.read(s, "shop")
    assert (published.release, published.stable, published.canary, published.weight) == (
        "shop-1.3.1",
        "1.1.0",
        "1.3.1",
        1,
    )


def test_the_first_release_of_a_service_publishes_any_baseline(store: Store) -> None:
    router(store, "shop-1.0.1", "1.0.1", "1.0.0").set_weight(1)
    with store.transaction() as s:
        assert flags.read(s, "shop").stable == "1.0.0"
