"""Clocks for tests that need the wall clock of a host whose clock is off."""

from __future__ import annotations

from datetime import datetime, timedelta

from shiprail.clock import WallClock


class SkewedClock(WallClock):
    """A host's wall clock, ``skew`` off the true time (NTP broken, a VM resumed from a snapshot)."""

    def __init__(self, skew: timedelta) -> None:
        self.skew = skew

    def now(self) -> datetime:
        return super().now() + self.skew
