"""Deployment freezes: windows of time in which no release may start or take more traffic.

Pure: the time is always handed in (``now``, timezone-aware); nothing here reads the clock.

A window is either one-off (``start`` to ``end``, wall-clock times in its zone) or recurring
(``cron_start`` to ``cron_end``, 5-field cron expressions read as wall-clock times in its zone,
as GitLab's deploy freezes are). A window holds from its start (included) to its end (not
included). A recurring window is on at ``now`` when its latest start at or before ``now`` came
after its latest end; it lasts until the next end.

Across a DST change the wall-clock reading is what counts: ``0 8 * * MON`` ends a weekend freeze
at 08:00 local time whichever offset the zone has that Monday. A wall-clock time the change skips
(02:30 on the night clocks go forward) is read with the offset before the change, i.e. an hour
later on the new clock; a time it repeats is read the first time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from shiprail.durations import format_duration


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The zone named ``name`` (validated when the policy loads)."""
    return ZoneInfo(name)


# The most a zone's offset moves at once (a DST change, a zone changing its standard time): how far
# apart a wall-clock reading and the instant it names can be.
_SHIFT = timedelta(hours=2)


def _at(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) the naive wall-clock time ``local`` names in ``tz``: a time the clocks skip
    with the offset before the change, a time they repeat the first time."""
    return local.replace(tzinfo=tz).astimezone(UTC)


def _last_fired(expr: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The latest instant at or before ``now`` at which ``expr`` (wall-clock times in ``tz``) fires.

    Compared as instants, not wall-clock readings: 02:30 on the night the clocks skip it is 03:30 on
    the new clock, so at 03:05 it has not come yet.
    """
    local = now.astimezone(tz).replace(tzinfo=None, microsecond=0)
    # croniter's get_prev is strictly before its base: from a base past every reading that can name
    # an instant at or before ``now``, the first instant not after it.
    fires = croniter(expr, local + _SHIFT + timedelta(seconds=1))
    while True:
        fired = _at(fires.get_prev(datetime), tz)
        if fired <= now:
            return fired


def _next_fired(expr: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first instant after ``after`` at which ``expr`` (wall-clock times in ``tz``) fires."""
    local = after.astimezone(tz).replace(tzinfo=None, microsecond=0)
    fires = croniter(expr, local - _SHIFT)
    while True:
        fired = _at(fires.get_next(datetime), tz)
        if fired > after:
            return fired


@dataclass(frozen=True)
class FreezeWindow:
    """One window: ``start``/``end`` (naive wall-clock datetimes) or ``cron_start``/``cron_end``."""

    name: str
    timezone: str
    start: datetime | None = None
    end: datetime | None = None
    cron_start: str | None = None
    cron_end: str | None = None
    services: tuple[str, ...] = ()
    """The services it applies to; empty: every service."""

    def applies_to(self, service: str) -> bool:
        return not self.services or service in self.services

    def ends_if_on(self, now: datetime) -> datetime | None:
        """When the window ends (timezone-aware) if it is on at ``now``; None when it is off."""
        tz = zone(self.timezone)
        if self.start is not None and self.end is not None:
            start, end = _at(self.start, tz), _at(self.end, tz)
            return end if start <= now < end else None
        assert self.cron_start is not None and self.cron_end is not None
        if _last_fired(self.cron_start, tz, now) <= _last_fired(self.cron_end, tz, now):
            return None
        return _next_fired(self.cron_end, tz, now)


@dataclass(frozen=True)
class FreezeHit:
    """A window that is on: its name, when it ends, and its zone (for saying so)."""

    name: str
    until: datetime
    timezone: str

    def describe(self) -> str:
        """``freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin``."""
        local = self.until.astimezone(zone(self.timezone))
        return f"freeze {self.name!r} until {local:%Y-%m-%d %H:%M} {self.timezone}"


def frozen(windows: Sequence[FreezeWindow], service: str, now: datetime) -> list[FreezeHit]:
    """The windows on at ``now`` for ``service``, the one that ends last first."""
    hits = [
        FreezeHit(w.name, until, w.timezone)
        for w in windows
        if w.applies_to(service) and (until := w.ends_if_on(now)) is not None
    ]
    return sorted(hits, key=lambda h: h.until, reverse=True)


def first_freeze(
    windows: Sequence[FreezeWindow], service: str, since: datetime, until: datetime
) -> tuple[datetime, FreezeHit] | None:
    """The first window on at some moment from ``since`` to ``until`` (both included), with when it
    begins (``since`` for one already on); None when none is."""
    on = frozen(windows, service, since)
    if on:
        return since, on[0]
    found: tuple[datetime, FreezeHit] | None = None
    for w in windows:
        if not w.applies_to(service):
            continue
        tz = zone(w.timezone)
        if w.start is not None and w.end is not None:
            begins, ends = _at(w.start, tz), _at(w.end, tz)
        else:
            assert w.cron_start is not None and w.cron_end is not None
            begins = _next_fired(w.cron_start, tz, since)
            ends = _next_fired(w.cron_end, tz, begins)
        if since <= begins <= until and (found is None or begins < found[0]):
            found = (begins, FreezeHit(w.name, ends, w.timezone))
    return found


def rollout_warning(windows: Sequence[FreezeWindow], service: str, bakes_s: Sequence[int], now: datetime) -> str | None:
    """What a rollout of these step bakes, started at ``now`` and promoted as soon as each bake is
    done, would run into; None when no freeze is on at its start or at any promotion that moves
    traffic (to its last step included). A freeze that begins and ends within a bake holds nothing:
    the gate judges the moment of each move."""
    on = frozen(windows, service, now)
    if on:
        return f"{on[0].describe()} is on now: `shiprail release start` is refused until it ends"
    span = sum(bakes_s[:-1])
    at = now
    for bake in bakes_s[:-1]:
        at += timedelta(seconds=bake)  # the promotion to the next step
        hits = frozen(windows, service, at)
        if not hits:
            continue
        hit = hits[0]
        found = first_freeze([w for w in windows if w.name == hit.name], service, now, at)
        begins = found[0] if found is not None else at
        tz = zone(hit.timezone)
        return (
            f"started now, the rollout (at least {format_duration(span)} to 100%) would run into freeze "
            f"{hit.name!r} from {begins.astimezone(tz):%Y-%m-%d %H:%M} until {hit.until.astimezone(tz):%Y-%m-%d %H:%M} "
            f"{hit.timezone}: the controller would hold it at its step until then"
        )
    return None
