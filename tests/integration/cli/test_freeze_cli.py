"""Deployment freezes from the command line: `release start` refused in a freeze, passed after it or by override."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.refusals import reference

PLAN = "releases/docs-2.4.0.yaml"
REASON = "The CTO approved shipping the fix during the holidays"
# Berlin is UTC+1 in December: the holidays begin at 16:00 UTC on 2026-12-18 and end at 08:00 UTC on 2027-01-04.
HOLIDAYS = (
    'freezes:\n  - {name: holidays, start: "2026-12-18T17:00", end: "2027-01-04T09:00", timezone: Europe/Berlin}\n'
)


@pytest.fixture
def clock(project: Path, monkeypatch: pytest.MonkeyPatch) -> SimulatedClock:
    """Every command's clock: a simulated one, inside the holidays; and a plan of low risk with no stage checks."""
    simulated = SimulatedClock(datetime(2026, 12, 21, 10, tzinfo=UTC))
    monkeypatch.setattr("shiprail.cli.context.WallClock", lambda: simulated)
    monkeypatch.setattr("shiprail.cli.plan.WallClock", lambda: simulated)
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text(encoding="utf-8") + HOLIDAYS, encoding="utf-8")
    text = (project / "releases/checkout-2.4.0.yaml").read_text(encoding="utf-8")
    text = text.replace("tags: [payments]", "tags: [docs]")
    text = text[: text.index("stage:\n")] + text[text.index("rollout:\n") :]
    (project / PLAN).write_text(text, encoding="utf-8")
    return simulated


# The refusal of the freeze gate by the holidays window (09:00 in Berlin is 08:00 UTC in January).
REFUSED_BY_HOLIDAYS = reference("freeze", [{"name": "holidays", "until": "2027-01-04T08:00:00+00:00"}])


def staged(shiprail: Any) -> None:
    assert shiprail("release", "create", PLAN, "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0", "--as", "bob").code == 0
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert r.code == 0, r.err


def test_start_is_refused_in_a_freeze_and_passes_once_it_is_over(shiprail: Any, clock: SimulatedClock) -> None:
    staged(shiprail)
    r = shiprail("release", "start", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: release checkout-2.4.0 cannot start: gate freeze failed (freeze 'holidays' until 2027-01-04 09:00 "
        "Europe/Berlin); fix it and try again, or someone with the role executive may pass it with `shiprail release "
        f"override checkout-2.4.0 --at staging --gate {REFUSED_BY_HOLIDAYS} --reason ...` (failed: freeze)\n"
    )
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["status"] == "staging"
    clock.sleep_until(datetime(2027, 1, 4, 7, 59, 59, tzinfo=UTC))
    assert shiprail("release", "start", "checkout-2.4.0", "--as", "alice").code == 1
    clock.advance(timedelta(seconds=1))  # 09:00 in Berlin: the freeze is over
    r = shiprail("release", "start", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.err) == (0, "")
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert shown["status"] == "rolling_out"
    freeze = [(g["verdict"], g["reason"]) for g in shown["gates"] if g["gate"] == "freeze"]
    assert freeze == [
        ("fail", "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"),
        ("fail", "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"),
        ("pass", "no deployment freeze is on"),
    ]


def test_an_executive_overrides_a_freeze_and_opens_a_postmortem(shiprail: Any, clock: SimulatedClock) -> None:
    staged(shiprail)
    r = shiprail("release", "override", "checkout-2.4.0", "--gate", "freeze", "--as", "dana", "--reason", REASON)
    assert (r.code, r.err) == (0, "")
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert shown["status"] == "rolling_out"
    assert [(o["by"], o["gates"], o["reason"]) for o in shown["overrides"]] == [("dana", ["freeze"], REASON)]
    assert [p["status"] for p in shown["postmortems"]] == ["open"]
    # The text says which refusal the override covered: the freeze by name and end.
    lines = shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    assert f"  override #1 by dana of freeze: holidays until 2027-01-04 08:00:00 UTC: {REASON}" in lines
    freeze = [(g["verdict"], g["reason"]) for g in shown["gates"] if g["gate"] == "freeze"]
    assert freeze == [
        ("overridden", f"freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin; overridden: dana: {REASON}")
    ]
    # A rollback is never held by a freeze.
    assert shiprail("release", "rollback", "checkout-2.4.0", "--as", "alice", "--reason", "changed our minds").code == 0
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["status"] == "rolling_back"


def test_a_freeze_that_does_not_parse_is_refused_with_its_line(shiprail: Any, project: Path) -> None:
    policy = project / "shiprail.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(text + HOLIDAYS.replace("Europe/Berlin", "Europe/Berln"), encoding="utf-8")
    r = shiprail("plan", "validate", "releases/checkout-2.4.0.yaml")
    assert (r.code, r.out) == (2, "")
    line = len(text.splitlines()) + 2
    assert r.err.startswith(
        f"shiprail.yaml:{line}: freezes[0].timezone: 'Europe/Berln' is not a time zone name like Europe/Berlin or "
        "UTC; did you mean 'Europe/Berlin'?"
    ), r.err


def at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """Every command's clock from now on: ``when`` (a simulated clock does not go back)."""
    monkeypatch.setattr("shiprail.cli.plan.WallClock", lambda: SimulatedClock(when))


def test_plan_validate_warns_of_a_freeze_the_rollout_would_run_into(
    shiprail: Any, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(monkeypatch, datetime(2026, 12, 18, 12, tzinfo=UTC))  # 13:00 in Berlin; the 6h30m rollout ends after 17:00
    r = shiprail("plan", "validate", "releases/checkout-2.4.0.yaml")
    assert (r.code, r.err) == (0, "")
    warning = (
        "started now, the rollout (at least 6h30m to 100%) would run into freeze 'holidays' from 2026-12-18 17:00 "
        "until 2027-01-04 09:00 Europe/Berlin: the controller would hold it at its step until then"
    )
    assert r.out.splitlines()[1] == f"  warning: {warning}"
    assert shiprail("plan", "validate", "releases/checkout-2.4.0.yaml", "--json").json()["files"][0]["warnings"] == [
        warning
    ]
    at(monkeypatch, datetime(2026, 12, 18, 9, tzinfo=UTC))  # the rollout is at 100% by 15:30 in Berlin
    r = shiprail("plan", "validate", "releases/checkout-2.4.0.yaml")
    assert (r.code, len(r.out.splitlines())) == (0, 1)
    assert "warnings" not in shiprail("plan", "validate", "releases/checkout-2.4.0.yaml", "--json").json()["files"][0]


def test_plan_validate_warns_of_a_freeze_naming_a_service_without_a_file(shiprail: Any, project: Path) -> None:
    # A typo in a freeze's services is a freeze that never holds anything: said, not refused (the
    # service file may be written later).
    policy = project / "shiprail.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8")
        + 'freezes:\n  - {name: launch, start: "2030-01-01T00:00", end: "2030-01-02T00:00", services: [chekout]}\n',
        encoding="utf-8",
    )
    r = shiprail("plan", "validate", "releases/checkout-2.4.0.yaml")
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines()[1:] == [
        "  warning: shiprail.yaml: freeze 'launch' names the service 'chekout', which has no services/chekout.yaml, "
        "so it holds no release of it; did you mean 'checkout'?"
    ]


def test_an_override_naming_another_refusal_of_the_freeze_gate_is_refused_and_stores_nothing(
    shiprail: Any, clock: SimulatedClock
) -> None:
    staged(shiprail)
    other = reference("freeze", [{"name": "maintenance", "until": "2026-12-21T12:00:00+00:00"}])
    args = ("release", "override", "checkout-2.4.0", "--at", "staging", "--as", "dana", "--reason", REASON)
    r = shiprail(*args, "--gate", other)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: gate freeze of release checkout-2.4.0 fails now for freeze 'holidays' until 2027-01-04 09:00 "
        f"Europe/Berlin, not for the refusal you override ({other}): an override covers the refusal its author "
        "saw, so this one needs an override of its own; nothing was overridden. Look again (`shiprail release show "
        f"checkout-2.4.0`) and override it with --gate {REFUSED_BY_HOLIDAYS}\n"
    )
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert (shown["status"], shown["overrides"], shown["postmortems"]) == ("staging", [], [])
    r = shiprail(*args, "--gate", REFUSED_BY_HOLIDAYS)
    assert (r.code, r.err) == (0, "")
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    holidays = [{"name": "holidays", "until": "2027-01-04T08:00:00+00:00"}]
    assert [(o["gates"], o["refused_by"]) for o in shown["overrides"]] == [(["freeze"], {"freeze": holidays})]
