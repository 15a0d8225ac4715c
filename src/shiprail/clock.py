"""The one place shiprail reads time.

Everything that needs the time takes a ``Clock``. Production uses ``WallClock``; tests use
``SimulatedClock`` so an hours-long bake runs in microseconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current time and of waiting."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when``."""
        ...


class WallClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            time.sleep(delay)


class SimulatedClock:
    """A clock that moves only when told to; ``sleep_until`` jumps forward at once."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def sleep_until(self, when: datetime) -> None:
        if when > self._now:
            self._now = when

    def advance(self, delta: timedelta | float) -> datetime:
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self._now
