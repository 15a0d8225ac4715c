"""The templates `shiprail init` writes are usable as they stand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shiprail.cli.init import write_project
from shiprail.project import check_plan_file

EXAMPLE = "releases/checkout-2.4.0.yaml"
PLAN_TEMPLATE = "templates/release-plan.yaml"
GALLERY = "templates/rollback-contract.yaml"
RETRO = "templates/retrospective.md"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_the_templates(root: Path) -> None:
    for rel in (PLAN_TEMPLATE, GALLERY, RETRO):
        assert (root / rel).is_file(), f"shiprail init did not write {rel}"


def _with_gallery_contract(root: Path) -> Path:
    """The example plan with its rollback contract replaced by the whole gallery file."""
    plan = (root / EXAMPLE).read_text(encoding="utf-8")
    start = plan.index("rollback_contract:\n")
    end = plan.index("\ncommunication:")
    gallery = (root / GALLERY).read_text(encoding="utf-8")
    path = root / "releases" / "gallery.yaml"
    path.write_text(plan[:start] + gallery.rstrip("\n") + "\n" + plan[end:], encoding="utf-8")
    return path


def test_the_contract_gallery_validates_in_place_of_the_example_contract(root: Path) -> None:
    checked = check_plan_file(_with_gallery_contract(root))
    gallery = yaml.safe_load((root / GALLERY).read_text(encoding="utf-8"))
    assert list(gallery) == ["rollback_contract"]
    assert [t.name for t in checked.resolved.contract.triggers] == [
        t["name"] for t in gallery["rollback_contract"]["triggers"]
    ]


def test_the_contract_gallery_shows_every_kind_of_trigger(root: Path) -> None:
    contract: dict[str, Any] = yaml.safe_load((root / GALLERY).read_text(encoding="utf-8"))["rollback_contract"]
    triggers: list[dict[str, Any]] = contract["triggers"]

    def having(key: str) -> list[dict[str, Any]]:
        return [t for t in triggers if key in t]

    for comparison in ("above", "below", "above_baseline", "regression", "min_samples", "consecutive"):
        assert having(comparison), f"no trigger with {comparison}"
    assert [t for t in having("above") if "metric" in t], "no absolute threshold on a metric"
    assert all("alpha" in t["regression"] for t in having("regression"))
    assert {t.get("signal") for t in triggers} >= {"customer_complaint", "alert"}
    assert "on_no_data" in contract
    assert "max_duration" in contract["revert"]


def test_the_example_plan_judges_the_canary_against_the_baseline(root: Path) -> None:
    # The plan a new project starts from arms the sequential judge on both metrics the example
    # service can count (count_query, buckets_query), beside its thresholds, and it validates.
    checked = check_plan_file(root / EXAMPLE)
    contract = checked.resolved.contract
    judged = [(t.name, t.metric, t.regression.alpha) for t in contract.armed() if t.regression is not None]
    assert judged == [("error-regression", "error_rate", 0.01), ("latency-regression", "latency_p99", 0.01)]
    assert [t.name for t in contract.triggers] == [
        "errors",
        "slow",
        "complaints",
        "error-regression",
        "latency-regression",
    ]


def test_the_release_plan_template_is_yaml(root: Path) -> None:
    data = yaml.safe_load((root / PLAN_TEMPLATE).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert {"service", "version", "baseline", "owner", "scope", "rollback_contract", "communication", "verify"} <= set(
        data
    )


def test_the_release_plan_template_is_a_valid_plan_in_the_example_project(root: Path) -> None:
    checked = check_plan_file(root / PLAN_TEMPLATE)
    assert (checked.resolved.service, checked.resolved.risk) == ("checkout", "high")


def test_the_retrospective_guide_has_every_section(root: Path) -> None:
    text = (root / RETRO).read_text(encoding="utf-8")
    headings = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    for heading in (
        "Timeline",
        "Gate results",
        "Overrides and post-mortems",
        "Rollback log",
        "Metrics per step",
        "What went well?",
        "What surprised us?",
        "What should change in the process?",
        "Action items",
    ):
        assert heading in headings, f"the retrospective guide has no {heading!r} section"
    assert "| action | owner | due | link |" in text
