"""What a release package says against what its audit events record, on the demo's two releases.

``shiprail demo`` leaves a project with a release that completed (shop 1.1.0) and one its
contract rolled back (shop 1.2.0), each through a real rollout. Their packages verify as
exported, against the store too; a field of theirs rewritten (its manifest recomputed, as by
whoever rewrote it) must not: ``verify-package`` names the file and the field, exit 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import shiprail
from shiprail.cli.main import main
from shiprail.export.verify import verify_package
from tests.integration.test_retro_export import _fresh_manifest

COMPLETE, ROLLED_BACK = "shop-1.1.0", "shop-1.2.0"
OUTSIDE = "the release's record was changed outside the chain"


def _shiprail(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPRAIL_")}
    return subprocess.run(
        [sys.executable, "-m", "shiprail", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's project, its two releases exported into ``pkg/<id>``."""
    root = tmp_path_factory.mktemp("demo")
    done = _shiprail(root, "demo", "--dir", str(root / "project"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for rid in (COMPLETE, ROLLED_BACK):
        done = _shiprail(root / "project", "release", "export", rid, "--out", str(root / "pkg" / rid))
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def package(demo: Path, tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the demo release's package, to change."""

    def copy(rid: str) -> Path:
        out = tmp_path / rid
        shutil.copytree(demo / "pkg" / rid, out)
        return out

    return copy


def _rewrite(out: Path, name: str, change: Callable[[Any], None]) -> None:
    """``change`` the JSON of the package file ``name`` in place, and recompute the manifest."""
    path = out / name
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _fresh_manifest(out)


def _fails_with(out: Path, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """verify-package exits 1 on ``out``, ``line`` its one problem."""
    assert verify_package(out).problems == [line]
    capsys.readouterr()
    assert main(["release", "verify-package", str(out)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err == f"error: the package {out} does not hold: {line}"


@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_the_demo_packages_verify_as_exported(demo: Path, rid: str) -> None:
    done = _shiprail(demo / "project", "release", "verify-package", str(demo / "pkg" / rid), "--against-store")
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert done.stdout.rstrip().endswith("they match the audit chain")


@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_a_baseline_rewritten_in_release_json_and_the_resolved_release_is_caught(
    package: Callable[[str], Path], rid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The version the release replaced (its baseline), rewritten in both files that state it:
    release.json was compared with plan.resolved.json only, which nothing tied to the events."""
    out = package(rid)
    _rewrite(out, "release.json", lambda d: d["release"].update(baseline="0.9.0"))
    _rewrite(out, "plan.resolved.json", lambda d: d.update(baseline="0.9.0"))
    recorded = json.loads((out / "release.json").read_text())["release"]["resolved_hash"]
    _fails_with(
        out,
        f"plan.resolved.json is not the resolved release the audit events record (resolved_hash {recorded[:12]}…): "
        f"{OUTSIDE}",
        capsys,
    )


def _moved(at: str) -> str:
    return (datetime.fromisoformat(at) + timedelta(minutes=5)).isoformat()


# What is rewritten in rollout.json's rollout progress: (part, row, field, new value from the old).
PROGRESS: dict[str, tuple[str, int, str, Callable[[Any], Any]]] = {
    "step entered": ("as_run", 0, "entered_at", _moved),
    "step weight": ("as_run", 0, "weight", lambda w: w / 2),
    "step left by": ("as_run", 0, "left_by", lambda _: "complete"),
    "router weight": ("router", 0, "weight", lambda w: w / 2),
    "router time": ("router", 0, "at", _moved),
    "phase left": ("phases", 2, "left_at", _moved),
    "planned step weight": ("planned", 0, "weight", lambda w: w / 2),
    "exposure weight": ("exposure", 0, "weight", lambda w: w / 2),
}
WHAT = {
    "as_run": ("step as run", "step"),
    "router": ("router call", "seq"),
    "phases": ("phase", None),
    "planned": ("planned step", None),
    "exposure": ("exposure", None),
}


def _rows(doc: dict[str, Any], part: str) -> list[dict[str, Any]]:
    rows = {"planned": lambda d: d["planned"]["steps"], "exposure": lambda d: d["exposure"]["per_weight"]}
    return rows.get(part, lambda d: d[part])(doc)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", list(PROGRESS))
@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_the_rollout_progress_rewritten_is_caught(
    package: Callable[[str], Path], rid: str, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Which steps the rollout went through, at what weight and when, the weights the router confirmed,
    the traffic served: rollout.json's history of it was compared with nothing."""
    out = package(rid)
    part, n, key, change = PROGRESS[case]
    row = _rows(json.loads((out / "rollout.json").read_text()), part)[n]
    was = row[key]
    _rewrite(out, "rollout.json", lambda d: _rows(d, part)[n].update({key: change(was)}))
    what, ident = WHAT[part]
    label, name = (ident, row[ident]) if ident else ("number", n + 1)
    now = change(was)
    _fails_with(
        out,
        f"rollout.json: the {what} with {label} {name} has {key} {now if isinstance(now, str) else json.dumps(now)}, "
        f"but the audit events record {key} {was if isinstance(was, str) else json.dumps(was)}: {OUTSIDE}",
        capsys,
    )


@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_the_traffic_served_rewritten_is_caught(
    package: Callable[[str], Path], rid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = package(rid)
    was = json.loads((out / "rollout.json").read_text())["exposure"]["full_traffic_seconds"]
    _rewrite(out, "rollout.json", lambda d: d["exposure"].update(full_traffic_seconds=was * 2))
    _fails_with(
        out,
        f"rollout.json's exposure.full_traffic_seconds is {json.dumps(was * 2)}, but the audit events record "
        f"{json.dumps(was)}: {OUTSIDE}",
        capsys,
    )


# What is rewritten of the metrics the package reports: (file, change, the problem it makes) with the
# file's JSON as it was exported.
METRICS: dict[str, tuple[str, Callable[[Any], None], Callable[[Any], str]]] = {
    "a step's last metric": (
        "rollout.json",
        lambda d: d["metrics_per_step"][0]["triggers"][0].update(value=0.0001),
        lambda d: (
            f"rollout.json: the metrics of step 1 with trigger {d['metrics_per_step'][0]['triggers'][0]['trigger']} "
            f"has value 0.0001, but the audit events record value "
            f"{json.dumps(d['metrics_per_step'][0]['triggers'][0]['value'])}"
        ),
    ),
    "a step's last verdict": (
        "rollout.json",
        lambda d: d["metrics_per_step"][0].update(last_verdict="pass-ish"),
        lambda d: (
            "rollout.json: the metrics per step with step 1 has last_verdict pass-ish, but the audit events record "
            f"last_verdict {d['metrics_per_step'][0]['last_verdict']}"
        ),
    ),
    "who was on call": (
        "verify.json",
        lambda d: d.update(on_call="mallory"),
        lambda d: f"verify.json's on_call is mallory, but the audit events record {d['on_call']}",
    ),
    "when Verify closed": (
        "verify.json",
        lambda d: d.update(closed_at="2026-01-01T00:00:00+00:00"),
        lambda d: (
            "verify.json's closed_at is 2026-01-01T00:00:00+00:00, but the audit events record "
            f"{d['closed_at'] or 'null'}"
        ),
    ),
}


def _rewritten_fails(
    out: Path,
    name: str,
    change: Callable[[Any], None],
    problem: Callable[[Any], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``change`` the package file ``name``; verify-package then names ``problem`` of it as exported."""
    expected = problem(json.loads((out / name).read_text()))
    _rewrite(out, name, change)
    _fails_with(out, f"{expected}: {OUTSIDE}", capsys)


@pytest.mark.parametrize("case", list(METRICS))
@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_the_metrics_the_package_reports_rewritten_are_caught(
    package: Callable[[str], Path], rid: str, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each step's last metrics (rollout.json) and the validation window and what it saw (verify.json)
    were compared with nothing: a breach could be made to read as a pass."""
    _rewritten_fails(package(rid), *METRICS[case], capsys)


def test_an_analysis_during_verify_rewritten_is_caught(
    package: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = package(COMPLETE)
    first = json.loads((out / "verify.json").read_text())["analyses"][0]
    _rewrite(out, "verify.json", lambda d: d["analyses"][0].update(verdict="fail"))
    _fails_with(
        out,
        f"verify.json: the analysis with id {first['id']} has verdict fail, but the audit events record verdict "
        f"{first['verdict']}: {OUTSIDE}",
        capsys,
    )


def _flip(verdict: str) -> str:
    return "fail" if verdict == "pass" else "pass"


# What the package sums up from its records and events, rewritten: (file, change, the problem it makes).
SUMMARIES: dict[str, tuple[str, Callable[[Any], None], Callable[[Any], str]]] = {
    "the release's summary": (
        "release.json",
        lambda d: d["release"].update(summary="Nothing to see"),
        lambda d: (
            f'release.json\'s summary is "Nothing to see", but the audit events record '
            f"{json.dumps(d['release']['summary'])}"
        ),
    ),
    "how it ended": (
        "release.json",
        lambda d: d["outcome"].update(headline="in-progress"),
        lambda d: (
            f"release.json's outcome.headline is in-progress, but the audit events record "
            f"{json.dumps(d['outcome']['headline']) if ' ' in d['outcome']['headline'] else d['outcome']['headline']}"
        ),
    ),
    "a gate's final verdict": (
        "gates.json",
        lambda d: d["summary"][0].update(final=_flip(d["summary"][0]["final"])),
        lambda d: (
            f"gates.json: the gate summary with number 1 has final {_flip(d['summary'][0]['final'])}, but the audit "
            f"events record final {d['summary'][0]['final']}"
        ),
    ),
    "where a gate was evaluated": (
        "gates.json",
        lambda d: d["evaluations"][0].update(where="verify"),
        lambda d: (
            f"gates.json: the gate evaluation with id {d['evaluations'][0]['id']} has where verify, but the audit "
            f"events record where {d['evaluations'][0]['where']}"
        ),
    ),
    "whether an approval counts": (
        "gates.json",
        lambda d: d["approvals"][0].update(current=not d["approvals"][0]["current"]),
        lambda d: (
            f"gates.json: the approval with number 1 has current {json.dumps(not d['approvals'][0]['current'])}, "
            f"but the audit events record current {json.dumps(d['approvals'][0]['current'])}"
        ),
    ),
}


@pytest.mark.parametrize("case", list(SUMMARIES))
@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_what_the_package_sums_up_rewritten_is_caught(
    package: Callable[[str], Path], rid: str, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The outcome, the release's summary, the gates' summaries and places, whether each approval
    counts: each derived at export from records compared with their events, and compared with nothing."""
    _rewritten_fails(package(rid), *SUMMARIES[case], capsys)


def test_where_a_rollback_was_decided_rewritten_is_caught(
    package: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = package(ROLLED_BACK)
    [where] = json.loads((out / "rollback.json").read_text())["decided_at"]
    _rewrite(out, "rollback.json", lambda d: d.update(decided_at=["verify"]))
    _fails_with(
        out,
        f'rollback.json\'s decided_at is ["verify"], but the audit events record {json.dumps([where])}: {OUTSIDE}',
        capsys,
    )


def test_the_metrics_after_a_rollback_rewritten_are_caught(
    package: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the contract's metrics read once traffic was back on the baseline was stated by no event and
    compared with nothing: a rollback could be made to look like it recovered."""
    out = package(ROLLED_BACK)
    [log] = json.loads((out / "rollback.json").read_text())["rollbacks"]
    first = log["metrics_after"][0]
    assert first["canary"]["value"] != 0.125
    was = json.dumps(first["canary"], sort_keys=True, separators=(",", ":"))
    now = json.dumps(first["canary"] | {"value": 0.125}, sort_keys=True, separators=(",", ":"))
    _rewrite(out, "rollback.json", lambda d: d["rollbacks"][0]["metrics_after"][0]["canary"].update(value=0.125))
    _fails_with(
        out,
        f"rollback.json: the metric read after the revert with trigger {first['trigger']} has canary {now}, "
        f"but the audit events record canary {was}: {OUTSIDE}",
        capsys,
    )


@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_who_a_gate_evaluation_names_rewritten_is_caught(
    package: Callable[[str], Path], rid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Who acted when a gate was evaluated (its row's by, its event's actor) was compared with nothing."""
    _rewritten_fails(
        package(rid),
        "gates.json",
        lambda d: d["evaluations"][0].update(by="mallory"),
        lambda d: (
            f"gates.json: the gate evaluation with action {d['evaluations'][0]['action']} has principal mallory, but "
            f"the audit events record principal {d['evaluations'][0]['by']}"
        ),
        capsys,
    )


def test_a_package_another_shiprail_exported_is_not_derived_again(
    package: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Another shiprail may derive a package's views of its events otherwise: a difference there is
    the versions', not tampering, so they are not derived again, and the report says so."""
    out = package(COMPLETE)
    _rewrite(out, "release.json", lambda d: d.update(shiprail_version="0.0.1"))
    _rewrite(out, "rollout.json", lambda d: d["as_run"][0].update(weight=d["as_run"][0]["weight"] / 2))
    report = verify_package(out)
    note = (
        "what the export derived from the events (rollout.json's progress and metrics, verify.json, the "
        "summaries) was not derived again: the package was exported by shiprail 0.0.1 and this is "
        f"{shiprail.__version__}; verify it with shiprail 0.0.1 to compare them"
    )
    assert (report.problems, report.notes) == ([], [note])
    capsys.readouterr()
    assert main(["release", "verify-package", str(out)]) == 0
    assert " ".join(capsys.readouterr().out.split()).endswith(f"not compared: {note}")


def _sha(evidence: Any) -> str:
    """The SHA-256 of evidence as the store keeps it (its canonical JSON), cut as messages show it."""
    text = json.dumps(evidence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12] + "…"


def _more_evidence(row: dict[str, Any]) -> dict[str, Any]:
    return row["evidence"] | {"approvals": ["bob", "mallory"]}


# What the audit events state of the rows beside them since this shiprail, rewritten in the package:
# (file, change, the problem it makes) with the file's JSON as it was exported.
STATED: dict[str, tuple[str, Callable[[Any], None], Callable[[Any], str]]] = {
    "when an approval was given": (
        "gates.json",
        lambda d: d["approvals"][0].update(at=_moved(d["approvals"][0]["at"])),
        lambda d: (
            f"gates.json: the approval with principal {d['approvals'][0]['by']} has at "
            f"{_moved(d['approvals'][0]['at'])}, but the audit events record at {d['approvals'][0]['at']}"
        ),
    ),
    "a gate evaluation's evidence": (
        "gates.json",
        lambda d: d["evaluations"][0].update(evidence=_more_evidence(d["evaluations"][0])),
        lambda d: (
            f"gates.json: the gate evaluation with action {d['evaluations'][0]['action']} has evidence sha256 "
            f"{_sha(_more_evidence(d['evaluations'][0]))}, but the audit events record evidence sha256 "
            f"{_sha(d['evaluations'][0]['evidence'])}"
        ),
    ),
    "a gate evaluation's refusal": (
        "gates.json",
        lambda d: d["evaluations"][0].update(refusal="freeze@0badc0de"),
        lambda d: (
            f"gates.json: the gate evaluation with action {d['evaluations'][0]['action']} has refusal "
            "freeze@0badc0de, but the audit events record refusal null"
        ),
    ),
    "when an analysis was made": (
        "rollout.json",
        lambda d: d["analyses"][0].update(at=_moved(d["analyses"][0]["at"])),
        lambda d: (
            f"rollout.json: the analysis with step {d['analyses'][0]['step']} has at {_moved(d['analyses'][0]['at'])}, "
            f"but the audit events record at {d['analyses'][0]['at']}"
        ),
    ),
    "an analysis's id": (
        "rollout.json",
        lambda d: d["analyses"][0].update(id=d["analyses"][0]["id"] + 1000),
        lambda d: (
            f"rollout.json: the analysis with step {d['analyses'][0]['step']} has id {d['analyses'][0]['id'] + 1000}, "
            f"but the audit events record id {d['analyses'][0]['id']}"
        ),
    ),
    "an analysis's status": (
        "rollout.json",
        lambda d: d["analyses"][0].update(status="staging"),
        lambda d: (
            f"rollout.json: the analysis with step {d['analyses'][0]['step']} has status staging, but the audit "
            f"events record status {d['analyses'][0]['status']}"
        ),
    ),
}


@pytest.mark.parametrize("case", list(STATED))
@pytest.mark.parametrize("rid", [COMPLETE, ROLLED_BACK])
def test_what_the_events_state_of_their_rows_rewritten_is_caught(
    package: Callable[[str], Path], rid: str, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """When an approval was given, a gate evaluated, an analysis made; a gate evaluation's evidence and
    refusal, an analysis's id and status: stated by no event, so rewritten under a fresh manifest they
    verified."""
    _rewritten_fails(package(rid), *STATED[case], capsys)


def test_when_a_gate_was_evaluated_rewritten_is_caught(package: Callable[[str], Path]) -> None:
    """Its event states the evaluation's time, which places it too: a time no event states places it nowhere."""
    out = package(ROLLED_BACK)
    first = json.loads((out / "gates.json").read_text())["evaluations"][0]
    moved = (datetime.fromisoformat(first["at"]) - timedelta(milliseconds=1)).isoformat()
    _rewrite(out, "gates.json", lambda d: d["evaluations"][0].update(at=moved))
    assert verify_package(out).problems == [
        f"gates.json: the gate evaluation with action stage has at {moved}, but the audit events record at "
        f"{first['at']}: {OUTSIDE}",
        f"gates.json: the gate evaluation with id {first['id']} has where {first['where']}, but the audit events "
        f"record where : {OUTSIDE}",
    ]
