"""``freezes:`` in ``shiprail.yaml``: the windows that load, and each mistake with its exact line and key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from shiprail.domain.freezes import FreezeWindow
from shiprail.errors import PlanInvalid
from shiprail.project import open_project

POLICY = "shiprail.yaml"


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def with_freezes(project: Path, entries: str) -> int:
    """Append ``freezes:`` with ``entries`` to the policy; the line of its first entry."""
    path = project / POLICY
    text = path.read_text(encoding="utf-8")
    path.write_text(f"{text}freezes:\n{entries}", encoding="utf-8")
    return len(text.splitlines()) + 2


def problems(project: Path, entries: str) -> tuple[int, list[str]]:
    line = with_freezes(project, entries)
    with pytest.raises(PlanInvalid) as exc:
        open_project(project)
    assert exc.value.exit_code == 2
    return line, [str(p) for p in exc.value.problems]


def test_freezes_load_as_windows(project: Path) -> None:
    with_freezes(
        project,
        '  - {name: holidays, start: "2026-12-18T17:00", end: 2027-01-04, timezone: Europe/Berlin}\n'
        '  - {name: weekends, cron_start: "0 17 * * FRI", cron_end: "0 8 * * MON", services: [checkout]}\n',
    )
    assert open_project(project).policy.freeze_windows() == (
        FreezeWindow("holidays", "Europe/Berlin", start=datetime(2026, 12, 18, 17), end=datetime(2027, 1, 4)),
        FreezeWindow("weekends", "UTC", cron_start="0 17 * * FRI", cron_end="0 8 * * MON", services=("checkout",)),
    )


def test_no_freezes_by_default(project: Path) -> None:
    assert open_project(project).policy.freeze_windows() == ()


def test_an_unknown_time_zone(project: Path) -> None:
    line, found = problems(
        project, '  - {name: holidays, start: "2026-12-18T17:00", end: "2027-01-04T09:00", timezone: Europe/Berln}\n'
    )
    assert found == [
        f"{POLICY}:{line}: freezes[0].timezone: 'Europe/Berln' is not a time zone name like Europe/Berlin or UTC; "
        "did you mean 'Europe/Berlin'?"
    ]


def test_an_end_before_the_start(project: Path) -> None:
    line, found = problems(project, '  - name: holidays\n    start: "2027-01-04T09:00"\n    end: "2026-12-18T17:00"\n')
    assert found == [
        f"{POLICY}:{line + 2}: freezes[0].end: 2026-12-18T17:00 is not after start (2027-01-04T09:00); "
        "a freeze ends after it begins"
    ]


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        (
            "0 17 * * FRY",
            "a cron expression of 5 fields (minute hour day-of-month month day-of-week), like '0 17 * * FRI', "
            "is required, got '0 17 * * FRY'",
        ),
        (
            "0 0 17 * * FRI",
            "a cron expression of 5 fields (minute hour day-of-month month day-of-week), like '0 17 * * FRI', "
            "is required, got '0 0 17 * * FRI'",
        ),
        ("0 0 30 2 *", "'0 0 30 2 *' never fires (no such date); give a cron expression that does"),
    ],
)
def test_a_cron_expression_that_does_not_parse_or_never_fires(project: Path, cron: str, message: str) -> None:
    line, found = problems(project, f'  - {{name: weekends, cron_start: "{cron}", cron_end: "0 8 * * MON"}}\n')
    assert found == [f"{POLICY}:{line}: freezes[0].cron_start: {message}"]


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        (
            "{name: x}",
            "freezes[0]",
            "give start and end (one window) or cron_start and cron_end (a recurring one)",
        ),
        (
            '{name: x, start: "2026-12-18T17:00", end: "2026-12-19T17:00", cron_start: "0 17 * * FRI", '
            'cron_end: "0 8 * * MON"}',
            "freezes[0]",
            "give start and end (one window) or cron_start and cron_end (a recurring one), not both",
        ),
        ('{name: x, start: "2026-12-18T17:00"}', "freezes[0]", "end is missing; a one-off freeze needs both"),
        ('{name: x, cron_end: "0 8 * * MON"}', "freezes[0]", "cron_start is missing; a recurring freeze needs both"),
        (
            '{name: x, cron_start: "0 8 * * MON", cron_end: "0 8 * * MON"}',
            "freezes[0].cron_end",
            "is the same as cron_start, so the freeze would never be on",
        ),
        (
            '{name: x, start: "next friday", end: "2026-12-19T17:00"}',
            "freezes[0].start",
            "a date and time like 2026-12-18T17:00 is required, got 'next friday'",
        ),
        (
            '{name: x, start: "2026-12-18T17:00+01:00", end: "2026-12-19T17:00"}',
            "freezes[0].start",
            "2026-12-18T17:00+01:00 has a UTC offset; write the wall-clock time without one and name its zone "
            "with timezone",
        ),
        (
            '{name: "", cron_start: "0 17 * * FRI", cron_end: "0 8 * * MON"}',
            "freezes[0].name",
            "give the freeze a name, said in the gate's reason",
        ),
        (
            '{start: "2026-12-18T17:00", end: "2026-12-19T17:00"}',
            "freezes[0].name",
            "is required",
        ),
    ],
)
def test_a_freeze_that_is_not_one_whole_window(project: Path, entry: str, where: str, message: str) -> None:
    line, found = problems(project, f"  - {entry}\n")
    assert found == [f"{POLICY}:{line}: {where}: {message}"]


def test_two_freezes_of_one_name(project: Path) -> None:
    line, found = problems(
        project,
        '  - {name: holidays, start: "2026-12-18T17:00", end: "2027-01-04T09:00"}\n'
        '  - {name: holidays, start: "2027-12-17T17:00", end: "2028-01-03T09:00"}\n',
    )
    assert found == [
        f"{POLICY}:{line + 1}: freezes[1].name: another freeze is named 'holidays'; give each freeze its own name"
    ]
