"""What the SDK tests against a real ``shiprail serve`` share: the service ``shop`` and its flag router."""

from __future__ import annotations

import pytest

from shiprail.clock import WallClock
from shiprail.routers import FlagRouter, FlagRouterConfig
from shiprail.store.db import Store


@pytest.fixture
def router(store: Store) -> FlagRouter:
    """The flag router of release ``shop-2.0.0`` (2.0.0 against 1.0.0), publishing into ``store``."""
    return FlagRouter(
        FlagRouterConfig(type="flag"),
        store=store,
        clock=WallClock(),
        service="shop",
        release="shop-2.0.0",
        version="2.0.0",
        baseline="1.0.0",
    )


def acknowledged_by_all(revision: int, sdks: int) -> dict[str, object]:
    """The flag router's confirmation when every SDK in contact acknowledged ``revision``."""
    return {
        "revision": revision,
        "sdks": sdks,
        "acknowledged": sdks,
        "lagging": [],
        "confirmed": True,
        "summary": f"revision {revision} acknowledged by all {sdks} SDKs in contact",
    }
