"""``dry_run: true`` on a rollback-contract trigger: accepted, hashed only when used, and never the contract.

A dry-run trigger is judged and reported but never rolls back (docs/rollout.md), so it cannot be
what makes "no contract, no release" hold, nor cover what ``contract.must_cover`` requires.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shiprail.project import check_plan_file
from shiprail.schema.resolved import resolved_hash
from tests.unit.schema.test_plan_guardrails import (
    BAD,
    COMPLAINTS_TRIGGER,
    ERROR_REGRESSION,
    ERRORS_TRIGGER,
    EXAMPLE,
    LATENCY_REGRESSION,
    REGRESSION_TRIGGERS,
    SLOW_TRIGGER,
    Check,
    check,
    in_block,
    removed,
)

__all__ = ["check"]

DRY = "      dry_run: true\n"
# The example plan's hashes as shiprail computed them before `dry_run` existed (the example had no
# regression triggers then): a plan that does not use it must keep them, or every stored release's
# approvals would stop counting.
EXAMPLE_CONTRACT_HASH = "3a422b2f7ba6d35ec69877ae1faa91a4e7211161faebf2e90022b3d79526cc01"
EXAMPLE_RESOLVED_HASH = "fed3c0d5c3a6c18faec7c5e567697b286aeafad6be789138fe0d4b9dea341884"


def dry(block: str) -> tuple[str, str]:
    """An edit making the trigger ``block`` a dry run (one line added at its end)."""
    return block, block + DRY


def test_a_plan_without_dry_run_serialises_and_hashes_as_before(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    text = (project / EXAMPLE).read_text(encoding="utf-8")
    assert text.count(REGRESSION_TRIGGERS) == 1
    (project / BAD).write_text(text.replace(REGRESSION_TRIGGERS, ""), encoding="utf-8")  # the example as it was
    r = check_plan_file(project / BAD).resolved
    assert "dry_run" not in r.model_dump_json()
    assert r.contract_hash == EXAMPLE_CONTRACT_HASH
    assert resolved_hash(r.model_dump_json()) == EXAMPLE_RESOLVED_HASH


def test_a_dry_run_trigger_is_accepted_and_changes_the_contract_hash(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    example = check_plan_file(project / EXAMPLE).resolved
    text = (project / EXAMPLE).read_text(encoding="utf-8")
    assert text.count(ERROR_REGRESSION) == 1
    (project / BAD).write_text(text.replace(ERROR_REGRESSION, ERROR_REGRESSION + DRY), encoding="utf-8")
    r = check_plan_file(project / BAD).resolved
    assert [t.dry_run for t in r.contract.triggers] == [False, False, False, True, False]
    stored = json.loads(r.model_dump_json())["contract"]["triggers"]
    assert [t.get("dry_run") for t in stored] == [None, None, None, True, None]
    assert r.contract_hash != example.contract_hash
    assert [t.name for t in r.contract.armed()] == ["errors", "slow", "complaints", "latency-regression"]
    assert [t.name for t in r.contract.dry_runs()] == ["error-regression"]


def test_dry_run_takes_true_or_false_only(check: Check) -> None:
    assert check((ERRORS_TRIGGER, ERRORS_TRIGGER + "      dry_run: yes\n")) == [
        f"{BAD}:24: rollback_contract.triggers[0].dry_run: true or false is required, got 'yes'"
    ]


def test_a_contract_of_dry_runs_only_is_no_contract(check: Check) -> None:
    problems = check(
        dry(ERRORS_TRIGGER),
        dry(SLOW_TRIGGER),
        dry(COMPLAINTS_TRIGGER),
        dry(ERROR_REGRESSION),
        dry(LATENCY_REGRESSION),
    )
    assert problems[0] == (
        f"{BAD}:18: rollback_contract.triggers: every trigger is a dry run (5 with dry_run: true), so nothing "
        "would roll the release back; at least one trigger without dry_run is required"
    )


def test_a_dry_run_covers_nothing_contract_must_cover_requires(check: Check) -> None:
    # The example's error-regression trigger covers error_rate too: without it, only the dry run is left.
    assert check(dry(ERRORS_TRIGGER), removed(ERROR_REGRESSION)) == [
        f"{BAD}:18: rollback_contract.triggers: the contract does not cover error_rate, which shiprail.yaml "
        "contract.must_cover requires; add a trigger on error_rate (errors has dry_run: true, which covers nothing)"
    ]


def test_a_dry_run_beside_the_armed_triggers_covering_the_same_metric_is_valid(check: Check) -> None:
    assert (
        check(in_block(SLOW_TRIGGER, "      window: 5m\n", "      window: 5m\n" + DRY.replace("true", "false"))) == []
    )
