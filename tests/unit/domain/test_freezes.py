"""Deployment freezes: which windows are on at a given moment, and the freeze gate's verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shiprail.domain import gates
from shiprail.domain.freezes import FreezeHit, FreezeWindow, first_freeze, frozen, rollout_warning
from shiprail.domain.states import RULES, Action, Gate

BERLIN = "Europe/Berlin"
HOLIDAYS = FreezeWindow("holidays", BERLIN, start=datetime(2026, 12, 18, 17), end=datetime(2027, 1, 4, 9))
WEEKENDS = FreezeWindow("weekends", BERLIN, cron_start="0 17 * * FRI", cron_end="0 8 * * MON")
NIGHTS = FreezeWindow("nights", "UTC", cron_start="0 22 * * *", cron_end="0 6 * * *")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def on(window: FreezeWindow, now: datetime, service: str = "checkout") -> str | None:
    hits = frozen([window], service, now)
    return hits[0].describe() if hits else None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Berlin is UTC+1 in winter: 17:00 there is 16:00 UTC. The start is in the window, the end is not.
        (utc(2026, 12, 18, 15, 59, 59), None),
        (utc(2026, 12, 18, 16), "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"),
        (utc(2026, 12, 31, 23, 30), "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"),
        (utc(2027, 1, 4, 7, 59, 59), "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"),
        (utc(2027, 1, 4, 8), None),
    ],
)
def test_a_one_off_window_holds_from_its_start_to_its_end(now: datetime, expected: str | None) -> None:
    assert on(HOLIDAYS, now) == expected


def test_a_one_off_window_ending_after_a_dst_change_ends_at_the_new_offset() -> None:
    # Clocks in Berlin go from 02:00 CET to 03:00 CEST on 2027-03-28: 03:30 there is 01:30 UTC, not 02:30.
    spring = FreezeWindow("spring", BERLIN, start=datetime(2027, 3, 27, 12), end=datetime(2027, 3, 28, 3, 30))
    assert on(spring, utc(2027, 3, 28, 1, 29)) == "freeze 'spring' until 2027-03-28 03:30 Europe/Berlin"
    assert on(spring, utc(2027, 3, 28, 1, 30)) is None
    assert frozen([spring], "checkout", utc(2027, 3, 28, 1))[0].until == utc(2027, 3, 28, 1, 30)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 11, 25, 12), None),  # a Wednesday
        (utc(2026, 11, 27, 15, 59), None),  # Friday 16:59 in Berlin
        (utc(2026, 11, 27, 16), "freeze 'weekends' until 2026-11-30 08:00 Europe/Berlin"),
        (utc(2026, 11, 29, 0, 0), "freeze 'weekends' until 2026-11-30 08:00 Europe/Berlin"),  # across midnight
        (utc(2026, 11, 30, 6, 59, 59), "freeze 'weekends' until 2026-11-30 08:00 Europe/Berlin"),
        (utc(2026, 11, 30, 7), None),  # Monday 08:00 in Berlin
    ],
)
def test_a_weekly_window_holds_from_friday_evening_to_monday_morning(now: datetime, expected: str | None) -> None:
    assert on(WEEKENDS, now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 11, 28, 21, 59), None),
        (utc(2026, 11, 28, 22), "freeze 'nights' until 2026-11-29 06:00 UTC"),
        (utc(2026, 11, 29, 2), "freeze 'nights' until 2026-11-29 06:00 UTC"),
        (utc(2026, 11, 29, 6), None),
    ],
)
def test_a_nightly_window_spans_midnight(now: datetime, expected: str | None) -> None:
    assert on(NIGHTS, now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Spring: Friday 17:00 CET is 16:00 UTC; Monday 08:00 is CEST by then, 06:00 UTC.
        (utc(2027, 3, 26, 15, 59), None),
        (utc(2027, 3, 26, 16), "freeze 'weekends' until 2027-03-29 08:00 Europe/Berlin"),
        (utc(2027, 3, 29, 5, 59), "freeze 'weekends' until 2027-03-29 08:00 Europe/Berlin"),
        (utc(2027, 3, 29, 6), None),
        # Autumn: Friday 17:00 CEST is 15:00 UTC; Monday 08:00 is CET by then, 07:00 UTC.
        (utc(2026, 10, 23, 14, 59), None),
        (utc(2026, 10, 23, 15), "freeze 'weekends' until 2026-10-26 08:00 Europe/Berlin"),
        (utc(2026, 10, 26, 6, 59), "freeze 'weekends' until 2026-10-26 08:00 Europe/Berlin"),
        (utc(2026, 10, 26, 7), None),
    ],
)
def test_a_weekly_window_over_a_dst_change_keeps_to_the_wall_clock(now: datetime, expected: str | None) -> None:
    assert on(WEEKENDS, now) == expected


def test_a_window_ending_in_the_hour_a_dst_change_repeats_ends_the_first_time() -> None:
    # On 2026-10-25 Berlin's clocks go from 03:00 CEST back to 02:00 CET (01:00 UTC): 02:30 comes twice.
    early = FreezeWindow("early", BERLIN, cron_start="0 1 * * SUN", cron_end="30 2 * * SUN")
    assert on(early, utc(2026, 10, 24, 23)) == "freeze 'early' until 2026-10-25 02:30 Europe/Berlin"
    assert on(early, utc(2026, 10, 25, 0, 29)) == "freeze 'early' until 2026-10-25 02:30 Europe/Berlin"
    assert on(early, utc(2026, 10, 25, 0, 30)) is None
    assert on(early, utc(2026, 10, 25, 1, 15)) is None  # 02:15 again, on the CET clock


def test_a_window_for_some_services_holds_only_them() -> None:
    only = FreezeWindow(
        "black-friday", "UTC", start=datetime(2026, 11, 27), end=datetime(2026, 11, 28), services=("checkout",)
    )
    assert on(only, utc(2026, 11, 27, 12), "checkout") == "freeze 'black-friday' until 2026-11-28 00:00 UTC"
    assert on(only, utc(2026, 11, 27, 12), "search") is None


def test_of_windows_on_together_the_one_that_ends_last_comes_first() -> None:
    # Saturday 2026-12-19: both the holidays and the weekend are on; the holidays end later.
    hits = frozen([WEEKENDS, HOLIDAYS], "checkout", utc(2026, 12, 19, 12))
    assert [h.name for h in hits] == ["holidays", "weekends"]
    assert hits[1].until == utc(2026, 12, 21, 7)


def test_the_first_freeze_a_rollout_would_run_into() -> None:
    wednesday = utc(2026, 11, 25, 12)
    assert first_freeze([WEEKENDS], "checkout", wednesday, utc(2026, 11, 27, 15)) is None
    found = first_freeze([WEEKENDS, HOLIDAYS], "checkout", wednesday, utc(2026, 11, 28))
    assert found == (utc(2026, 11, 27, 16), FreezeHit("weekends", utc(2026, 11, 30, 7), BERLIN))
    # Already on: from the moment asked about.
    saturday = utc(2026, 11, 28, 9)
    assert first_freeze([WEEKENDS], "checkout", saturday, utc(2026, 11, 28, 10)) == (
        saturday,
        FreezeHit("weekends", utc(2026, 11, 30, 7), BERLIN),
    )


def test_the_freeze_gate() -> None:
    assert RULES[Action.START].gates[-1] is Gate.FREEZE
    assert Gate.FREEZE in RULES[Action.PROMOTE].gates
    assert all(Gate.FREEZE not in RULES[a].gates for a in (Action.ROLLBACK, Action.FINISH_ROLLBACK, Action.PAUSE))
    passed = gates.freeze([])
    assert (passed.gate, passed.passed, passed.reason, passed.evidence) == (
        Gate.FREEZE,
        True,
        "no deployment freeze is on",
        {"freezes": []},
    )
    hit = FreezeHit("holidays", utc(2027, 1, 4, 8), BERLIN)
    failed = gates.freeze([hit])
    assert (failed.passed, failed.reason) == (False, "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin")
    assert failed.evidence == {
        "freezes": [{"name": "holidays", "until": "2027-01-04T08:00:00+00:00", "timezone": BERLIN}]
    }
    into_verify = gates.freeze([hit], moves_traffic=False)
    assert (into_verify.passed, into_verify.reason) == (
        True,
        "this moves no traffic, so freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin does not hold it",
    )


def test_a_rollout_started_now_that_would_run_into_a_freeze_is_warned_of() -> None:
    bakes = [30 * 60, 2 * 3600, 4 * 3600, 0]  # 6h30m until the last traffic move (to 100%, which bakes nothing)
    assert rollout_warning([HOLIDAYS], "checkout", bakes, utc(2026, 12, 18, 9, 29)) is None
    assert rollout_warning([HOLIDAYS], "checkout", bakes, utc(2026, 12, 18, 9, 30)) == (
        "started now, the rollout (at least 6h30m to 100%) would run into freeze 'holidays' from 2026-12-18 17:00 "
        "until 2027-01-04 09:00 Europe/Berlin: the controller would hold it at its step until then"
    )
    assert rollout_warning([HOLIDAYS], "checkout", bakes, utc(2026, 12, 21)) == (
        "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin is on now: `shiprail release start` is refused until "
        "it ends"
    )
    assert rollout_warning([HOLIDAYS], "checkout", bakes, utc(2027, 1, 4, 8)) is None


def test_a_window_ending_at_a_time_the_clocks_skip_ends_an_hour_later_on_the_new_clock() -> None:
    # On 2026-03-29 Berlin's clocks go from 02:00 CET to 03:00 CEST (01:00 UTC): 02:30 is never shown.
    # Read with the offset before the change it is 03:30 CEST (01:30 UTC), so the window is on until
    # then, and says so; it ended at 03:00 while the gate said 'until 02:30', a time no clock shows.
    gap = FreezeWindow("gap", BERLIN, cron_start="0 1 * * SUN", cron_end="30 2 * * SUN")
    assert on(gap, utc(2026, 3, 29, 0, 59)) == "freeze 'gap' until 2026-03-29 03:30 Europe/Berlin"
    assert on(gap, utc(2026, 3, 29, 1, 5)) == "freeze 'gap' until 2026-03-29 03:30 Europe/Berlin"
    assert on(gap, utc(2026, 3, 29, 1, 29, 59)) == "freeze 'gap' until 2026-03-29 03:30 Europe/Berlin"
    assert on(gap, utc(2026, 3, 29, 1, 30)) is None
    assert frozen([gap], "checkout", utc(2026, 3, 29, 1, 5))[0].until == utc(2026, 3, 29, 1, 30)
    once = FreezeWindow("once", BERLIN, start=datetime(2026, 3, 28, 12), end=datetime(2026, 3, 29, 2, 30))
    assert on(once, utc(2026, 3, 29, 1, 15)) == "freeze 'once' until 2026-03-29 03:30 Europe/Berlin"


def test_a_freeze_that_begins_and_ends_within_a_bake_is_not_warned_of() -> None:
    # A nightly freeze holds promotions, not bakes: started at 14:00 UTC, this rollout moves traffic at
    # 14:30, 16:30 and 20:30, none of them between 22:00 and 06:00. Started at 16:00, its last move
    # (22:00) is held until 06:00. And one baking through a night, moving at 21:00 and 07:00, passes.
    nights = FreezeWindow("nights", "UTC", cron_start="0 22 * * *", cron_end="0 6 * * *")
    bakes = [30 * 60, 2 * 3600, 4 * 3600, 0]
    assert rollout_warning([nights], "checkout", bakes, utc(2026, 11, 24, 14)) is None
    assert rollout_warning([nights], "checkout", bakes, utc(2026, 11, 24, 16)) == (
        "started now, the rollout (at least 6h30m to 100%) would run into freeze 'nights' from 2026-11-24 22:00 "
        "until 2026-11-25 06:00 UTC: the controller would hold it at its step until then"
    )
    assert rollout_warning([nights], "checkout", [3600, 10 * 3600, 0], utc(2026, 11, 24, 20)) is None
