"""The flag hub forgets SDKs gone for a day: every process start is a new client id, and the
router reads every row of a service while it waits for acknowledgements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shiprail import defaults
from shiprail.clock import SimulatedClock
from shiprail.serve.hub import FlagHub
from shiprail.store import flags
from shiprail.store.db import Store

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def clients(store: Store) -> list[str]:
    with store.transaction() as s:
        return [c.client for c in flags.contacts(s, "shop", NOW - timedelta(days=30))]


def test_sdks_gone_for_a_day_are_forgotten_once_a_contact_window(store: Store) -> None:
    keep = timedelta(seconds=defaults.FLAG_CLIENT_KEEP_SECONDS)
    with store.transaction() as s:
        flags.record_contacts(
            s,
            [
                ("shop", "py-gone", 1, NOW - keep - timedelta(seconds=1)),
                ("shop", "py-quiet", 1, NOW - keep + timedelta(seconds=1)),
            ],
        )
    clock = SimulatedClock(NOW)
    hub = FlagHub(store, clock, ["shop"])
    try:
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        assert clients(store) == ["py-new", "py-quiet"]

        clock.advance(10)  # py-quiet is now past a day, but within the contact window there is no second prune
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        assert clients(store) == ["py-new", "py-quiet"]
        clock.advance(defaults.FLAG_CONTACT_SECONDS)  # a window later: pruned
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        assert clients(store) == ["py-new"]
    finally:
        hub.stop()
