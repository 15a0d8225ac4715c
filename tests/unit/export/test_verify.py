"""``shiprail.export.verify``: package files that cannot be read are problems of the package, not tracebacks."""

from __future__ import annotations

from pathlib import Path

from shiprail.export.package import CHAIN, EVENTS
from shiprail.export.verify import PackageReport, _load_json, read_events

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
