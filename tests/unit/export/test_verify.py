"""``shiprail.export.verify``: package files that cannot be read are problems of the package, not tracebacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from shiprail.export.package import CHAIN, EVENTS, build
from shiprail.export.record import ReleaseRecord
from shiprail.export.verify import PackageReport, _load_json, read_events, verify_package

BINARY = bytes([0x00, 0xE1, 0x80, 0xFF]) * 20


def test_events_that_are_binary_or_a_directory_are_problems(tmp_path: Path) -> None:
    (tmp_path / EVENTS).parent.mkdir(parents=True)
    (tmp_path / EVENTS).write_bytes(BINARY)
    report = PackageReport(tmp_path)
    assert read_events(tmp_path, report) == []
    assert report.problems == [
        f"{EVENTS} is not UTF-8 text (byte 0xe1 at offset 1), so not the audit events shiprail wrote"
    ]

    (tmp_path / EVENTS).unlink()
    (tmp_path / EVENTS).mkdir()
    report = PackageReport(tmp_path)
    assert read_events(tmp_path, report) == []
    assert report.problems == [f"{EVENTS} is a directory; give a file"]


def test_an_event_line_with_a_number_no_int_holds_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / EVENTS).parent.mkdir(parents=True)
    (tmp_path / EVENTS).write_text('{"seq": 1e999}\n' + "[" * 100_000 + "\n", encoding="utf-8")
    report = PackageReport(tmp_path)
    assert read_events(tmp_path, report) == []
    assert report.problems == [f"{EVENTS}:1 is not an audit event", f"{EVENTS}:2 is not an audit event"]


def test_a_json_file_that_is_binary_a_directory_or_not_json_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "release.json").write_bytes(BINARY)
    (tmp_path / "audit").mkdir()
    (tmp_path / CHAIN).mkdir()
    (tmp_path / "rollout.json").write_text('{"a":\n }', encoding="utf-8")
    report = PackageReport(tmp_path)
    for name in ("release.json", CHAIN, "rollout.json"):
        assert _load_json(tmp_path, name, report) == {}
    assert report.problems == [
        "release.json is not UTF-8 text (byte 0xe1 at offset 1)",
        f"{CHAIN} is a directory; give a file",
        "rollout.json is not JSON (Expecting value, line 2)",
    ]


def test_json_parts_of_the_wrong_shape_are_problems_not_tracebacks(rolled_back: ReleaseRecord, tmp_path: Path) -> None:
    for name, data in build(rolled_back, None, None, datetime(2026, 3, 2, tzinfo=UTC)).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    release = json.loads((tmp_path / "release.json").read_text(encoding="utf-8"))
    (tmp_path / "release.json").write_text(json.dumps(release | {"release": "x", "audit": [1]}), encoding="utf-8")
    chain = json.loads((tmp_path / CHAIN).read_text(encoding="utf-8"))
    (tmp_path / CHAIN).write_text(json.dumps(chain | {"head": {"seq": "29", "hash": "h"}}), encoding="utf-8")
    report = verify_package(tmp_path, chain=rolled_back.events)
    assert report.problems[:5] == [
        f"{CHAIN} was changed: its sha256 no longer matches MANIFEST.sha256",
        "release.json was changed: its sha256 no longer matches MANIFEST.sha256",
        "release.json: release is not a JSON object",
        "release.json: audit is not a JSON object",
        f"{CHAIN} is for release 'checkout-2.4.0', release.json for None",
    ]
    assert f"{CHAIN}: head seq '29' is not a seq number" in report.problems
    (tmp_path / CHAIN).write_text(json.dumps(chain | {"head": [29]}), encoding="utf-8")
    assert f"{CHAIN}: head is not a JSON object" in verify_package(tmp_path).problems


def test_an_approval_is_compared_with_what_its_event_says_it_approved_and_an_older_event_by_who_and_plan() -> None:
    from shiprail.export.verify import _approvals_listed
    from shiprail.store.audit import EventRow

    at = datetime(2026, 1, 1, tzinfo=UTC)
    plan, now, other = "p" * 64, "a" * 64, "b" * 64

    def approved(seq: int, who: str, **payload: str) -> EventRow:
        return EventRow(seq, at, who, "release.approved", "r", json.dumps({"plan_hash": plan, **payload}), "", "")

    # bob approved before migration 0010 (his event names no resolved hash; the migration filled his
    # row in), carol after it, of the release as it resolved then.
    events = [approved(1, "bob"), approved(2, "carol", resolved_hash=other)]
    rows = [
        {"by": "bob", "plan_hash": plan, "resolved_hash": now},
        {"by": "carol", "plan_hash": plan, "resolved_hash": now},
    ]
    assert _approvals_listed(rows, events) == [("bob", plan, None), ("carol", plan, now)]
    rows[1]["resolved_hash"] = other
    assert _approvals_listed(rows, events) == [("bob", plan, None), ("carol", plan, other)]


def test_a_revoked_approval_given_before_migration_0010_is_compared_with_none() -> None:
    # bob approved before migration 0010 (his event names no resolved hash; the migration filled his
    # row in), then revoked it: the revocation names the row's resolved hash, which his event does
    # not state, so the package kept comparing his approval event with a row that is gone.
    from shiprail.export.verify import unrevoked
    from shiprail.store.audit import EventRow

    at = datetime(2026, 1, 1, tzinfo=UTC)
    plan, now = "p" * 64, "a" * 64
    revoked = {"revoked": [{"plan_hash": plan, "resolved_hash": now, "approved_at": at.isoformat()}]}
    events = [
        EventRow(1, at, "bob", "release.approved", "r", json.dumps({"plan_hash": plan}), "", ""),
        EventRow(2, at, "carol", "release.approved", "r", json.dumps({"plan_hash": plan}), "", ""),
        EventRow(3, at, "bob", "approval.revoked", "r", json.dumps(revoked), "", ""),
    ]
    assert [(e.seq, e.actor) for e in unrevoked(events)] == [(2, "carol")]


def test_a_release_recorded_partly_by_an_earlier_shiprail_compares_the_times_only_its_newer_events_state() -> None:
    """shiprail upgraded while a release ran: two evaluations alike but for their time, the first's
    event stating none (its row took the clock apart), the second's stating its own."""
    from shiprail.export.verify import _check_stated_gates
    from shiprail.store.audit import EventRow

    first, second = datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC)
    said = {"action": "promote", "gate": "bake", "verdict": "fail", "reason": "baked 5m of 30m"}

    def evaluated(seq: int, at: datetime, **stated: str) -> EventRow:
        return EventRow(seq, at, "shiprail:controller", "gate.evaluated", "r", json.dumps(said | stated), "", "")

    events = [evaluated(1, first), evaluated(2, second, evaluated_at=second.isoformat())]
    row = said | {"by": "shiprail:controller"}
    rows = [row | {"id": 1, "at": "2026-01-01T09:59:59.999000+00:00"}, row | {"id": 2, "at": second.isoformat()}]
    report = PackageReport(Path("pkg"))
    _check_stated_gates({"evaluations": rows}, events, report)
    assert report.problems == []
    rows[1]["at"] = "2026-01-01T11:05:00+00:00"
    _check_stated_gates({"evaluations": rows}, events, report)
    assert report.problems == [
        "gates.json: the gate evaluation with action promote has at 2026-01-01T11:05:00+00:00, but the audit events "
        "record at 2026-01-01T11:00:00+00:00: the release's record was changed outside the chain"
    ]
