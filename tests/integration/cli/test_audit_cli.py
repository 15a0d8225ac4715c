"""``shiprail audit verify`` / ``export`` and ``release verify-package`` on files that are not what they claim.

Bad input (a checkpoint that is no checkpoint, an export that is binary, empty or a directory, an
unknown ``--release``) is exit 2 in one sentence naming the file or flag, and writes nothing; a
package whose audit events were replaced by binary does not hold (exit 1), as any changed file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

PLAN = "releases/checkout-2.4.0.yaml"
BINARY = bytes([0x00, 0xE1, 0x80, 0xFF, 0xFE]) * 60
HASH = "ab" * 32
CHECKPOINT = "use a checkpoint written by `shiprail audit export --checkpoint`"
UNSIGNED = (
    "warning: SHIPRAIL_AUDIT_KEY is not set, so this checkpoint is not signed: anyone who can write cp.json can "
    "forge one; set SHIPRAIL_AUDIT_KEY to sign it, and keep the checkpoint where whoever can write the database "
    "cannot\n"
)
EXPORT = "give a file written by `shiprail audit export --out`"


@pytest.fixture
def rid(shiprail: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A release created in the project: the audit chain holds its events."""
    monkeypatch.setenv("SHIPRAIL_USER", "alice")
    monkeypatch.delenv("SHIPRAIL_AUDIT_KEY", raising=False)
    result = shiprail("release", "create", PLAN, "--json")
    assert result.code == 0, result.err
    return str(result.json()["id"])


def exported(shiprail: Any) -> dict[str, Any]:
    """The whole chain exported to all.jsonl with its checkpoint in cp.json; the checkpoint."""
    code, _, err = shiprail("audit", "export", "--out", "all.jsonl", "--checkpoint", "cp.json")
    assert (code, err) == (0, UNSIGNED)
    return dict(json.loads(Path("cp.json").read_text(encoding="utf-8")))


def test_the_checkpoint_audit_export_writes_verifies(shiprail: Any, rid: str) -> None:
    cp = exported(shiprail)
    assert sorted(cp) == ["at", "hash", "seq"]
    for args in ((), ("--file", "all.jsonl")):
        code, out, err = shiprail("audit", "verify", "--checkpoint", "cp.json", *args)
        assert (code, err) == (0, ""), args
        assert out.endswith(f", matches checkpoint at seq {cp['seq']}\n")


def test_verify_json_says_which_checkpoint_it_matched(shiprail: Any, rid: str) -> None:
    """The text says `matches checkpoint at seq N`; --json said nothing of the checkpoint, so a
    script could not tell a chain checked against it from one checked without it."""
    cp = exported(shiprail)
    for args in ((), ("--file", "all.jsonl")):
        r = shiprail("audit", "verify", "--checkpoint", "cp.json", "--json", *args)
        assert (r.code, r.err) == (0, ""), args
        assert r.json()["checkpoint"] == {"seq": cp["seq"], "hash": cp["hash"], "at": cp["at"], "signed": False}
    assert "checkpoint" not in shiprail("audit", "verify", "--json").json()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"seq": 0}, "seq is 0, not the seq of an event (a whole number of at least 1)"),
        ({"seq": -5}, "seq is -5, not the seq of an event (a whole number of at least 1)"),
        ({"seq": "3"}, 'seq is "3", not the seq of an event (a whole number of at least 1)'),
        ({"seq": True}, "seq is true, not the seq of an event (a whole number of at least 1)"),
        ({"seq": 2.5}, "seq is 2.5, not the seq of an event (a whole number of at least 1)"),
        ({"hash": "ab"}, 'hash is "ab", not a SHA-256 (64 lowercase hex digits)'),
        ({"hash": HASH.upper()}, f'hash is "{HASH.upper()}", not a SHA-256 (64 lowercase hex digits)'),
        ({"hash": None}, "hash is null, not a SHA-256 (64 lowercase hex digits)"),
        ({"at": "x"}, 'at is "x", not an ISO 8601 time'),
        ({"at": 5}, "at is 5, not an ISO 8601 time"),
        ({"seq": None, "hash": None}, "seq is null, not the seq of an event (a whole number of at least 1)"),
        ({"signature": 5}, "signature is not an HMAC-SHA256 (64 lowercase hex digits)"),
        ({"signature": "é" * 64}, "signature is not an HMAC-SHA256 (64 lowercase hex digits)"),
    ],
)
def test_a_checkpoint_with_a_field_shiprail_never_writes_is_refused(
    shiprail: Any, rid: str, change: dict[str, Any], why: str
) -> None:
    cp = exported(shiprail) | change
    Path("bad.json").write_text(json.dumps(cp), encoding="utf-8")
    for args in ((), ("--file", "all.jsonl"), ("--json",)):
        code, out, err = shiprail("audit", "verify", "--checkpoint", "bad.json", *args)
        message = f"--checkpoint: bad.json is not a shiprail checkpoint: {why}; {CHECKPOINT}"
        if "--json" in args:
            assert (code, err) == (2, "")
            assert json.loads(out) == {"ok": False, "error": message, "exit_code": 2}
        else:
            assert (code, out, err) == (2, "", f"error: {message}\n"), args


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"seq": 1, "hash": "' + HASH + '"}', "it has no at"),
        ('{"hash": "' + HASH + '", "at": "2026-01-01T00:00:00+00:00"}', "it has no seq"),
        ("[1, 2]", "not a JSON object of seq, hash and at"),
        ('{"seq": 1,\n "hash": }', "not JSON (Expecting value, line 2)"),
        ("", "not JSON (Expecting value, line 1)"),
        ("[" * 100_000, "nested too deeply to be JSON of seq, hash and at"),
    ],
)
def test_a_checkpoint_that_is_not_one_is_refused_naming_what_is_missing(
    shiprail: Any, rid: str, text: str, why: str
) -> None:
    Path("bad.json").write_text(text, encoding="utf-8")
    code, out, err = shiprail("audit", "verify", "--checkpoint", "bad.json")
    assert (code, out, err) == (
        2,
        "",
        f"error: --checkpoint: bad.json is not a shiprail checkpoint: {why}; {CHECKPOINT}\n",
    )


def test_a_checkpoint_that_is_binary_or_a_directory_is_refused(shiprail: Any, rid: str) -> None:
    Path("bin.json").write_bytes(BINARY)
    code, out, err = shiprail("audit", "verify", "--checkpoint", "bin.json")
    assert (code, out) == (2, "")
    assert err == (
        "error: --checkpoint: bin.json is not a shiprail checkpoint: it is not UTF-8 text (byte 0xe1 at offset 1); "
        f"{CHECKPOINT}\n"
    )
    Path("cp.d").mkdir()
    code, out, err = shiprail("audit", "verify", "--checkpoint", "cp.d")
    assert (code, out, err) == (2, "", "error: --checkpoint: cp.d is a directory; give a file\n")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_export_that_is_binary_a_directory_or_empty_is_refused(shiprail: Any, rid: str, as_json: bool) -> None:
    Path("bin.jsonl").write_bytes(BINARY)
    Path("dir.jsonl").mkdir()
    Path("empty.jsonl").write_text("", encoding="utf-8")
    Path("blank.jsonl").write_text("\n  \n\n", encoding="utf-8")
    cases = {
        "bin.jsonl": f"bin.jsonl is not an audit export: it is not UTF-8 text (byte 0xe1 at offset 1); {EXPORT}",
        "dir.jsonl": "dir.jsonl is a directory; give a file",
        "empty.jsonl": f"empty.jsonl holds no audit events; {EXPORT}",
        "blank.jsonl": f"blank.jsonl holds no audit events; {EXPORT}",
        "missing.jsonl": "--file: missing.jsonl does not exist",
    }
    for name, message in cases.items():
        code, out, err = shiprail("audit", "verify", "--file", name, *(["--json"] if as_json else []))
        if as_json:
            assert (code, err) == (2, "")
            assert json.loads(out) == {"ok": False, "error": message, "exit_code": 2}, name
        else:
            assert (code, out, err) == (2, "", f"error: {message}\n"), name


def test_an_export_line_with_a_number_no_int_holds_is_not_an_event(shiprail: Any, rid: str) -> None:
    exported(shiprail)
    lines = Path("all.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith('"seq": 1}')  # keys sorted: seq comes last
    lines[0] = lines[0].removesuffix('"seq": 1}') + '"seq": 1e999}'

    Path("all.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = shiprail("audit", "verify", "--file", "all.jsonl")
    assert (code, out, err) == (2, "", "error: all.jsonl:1: not an audit event line from `shiprail audit export`\n")


def test_export_of_an_unknown_release_is_refused_and_writes_no_file(shiprail: Any, rid: str) -> None:
    code, out, err = shiprail("audit", "export", "--release", "nope", "--out", "a.jsonl")
    assert (code, out, err) == (2, "", f"error: --release: no release 'nope'; recent releases: {rid}\n")
    assert not Path("a.jsonl").exists()
    code, out, _ = shiprail("audit", "export", "--release", "nope")
    assert (code, out) == (2, "")
    # A known release still exports its events.
    code, out, err = shiprail("audit", "export", "--release", rid, "--out", "a.jsonl")
    assert (code, err) == (0, "")
    events = Path("a.jsonl").read_text(encoding="utf-8").splitlines()
    assert events and out == f"wrote {len(events)} events to a.jsonl\n"


def package(shiprail: Any, rid: str) -> Path:
    code, _, err = shiprail("release", "export", rid, "--out", "pk")
    assert (code, err) == (0, ""), err
    return Path("pk")


def test_a_package_whose_events_file_turned_binary_does_not_hold(shiprail: Any, rid: str) -> None:
    """Like any changed file of a package (docs/cli.md: exit 1 names the first problem)."""
    pk = package(shiprail, rid)
    (pk / "audit" / "events.jsonl").write_bytes(BINARY)
    code, out, err = shiprail("release", "verify-package", "pk")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == (
        "error: the package pk does not hold: audit/events.jsonl was changed: its sha256 no longer matches "
        "MANIFEST.sha256"
    )
    assert lines[1] == (
        "  also: audit/events.jsonl is not UTF-8 text (byte 0xe1 at offset 1), so not the audit events shiprail wrote"
    )
    result = shiprail("release", "verify-package", "pk", "--json")
    assert result.code == 1
    assert result.json()["problems"][:2] == [
        line.removeprefix("error: the package pk does not hold: ").removeprefix("  also: ") for line in lines[:2]
    ]


def test_a_package_s_chain_file_that_is_binary_or_empty_is_refused(shiprail: Any, rid: str) -> None:
    package(shiprail, rid)
    Path("c.jsonl").write_bytes(BINARY)
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "c.jsonl")
    assert (code, out) == (2, "")
    assert err == f"error: c.jsonl is not an audit export: it is not UTF-8 text (byte 0xe1 at offset 1); {EXPORT}\n"
    Path("e.jsonl").write_text("", encoding="utf-8")
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "e.jsonl")
    assert (code, out, err) == (2, "", f"error: e.jsonl holds no audit events; {EXPORT}\n")
    # The whole chain, exported after the package, checks it.
    exported(shiprail)
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "all.jsonl")
    assert (code, err) == (0, "")
    assert out.endswith("; they match the audit chain\n")


@pytest.mark.parametrize("command", [["audit", "verify"], ["audit", "export"], ["controllers"]])
def test_a_project_that_recorded_nothing_yet_says_so_and_creates_no_store(
    shiprail: Any, project: Path, command: list[str]
) -> None:
    code, out, err = shiprail(*command)
    store = project / ".shiprail" / "shiprail.db"
    assert (code, out) == (2, "")
    assert err == (
        f"error: no shiprail store at {store}; this project has recorded nothing yet "
        "(`shiprail release create` starts its store)\n"
    )
    assert not store.exists()


def test_an_in_memory_store_is_no_missing_file(shiprail: Any) -> None:
    code, out, _ = shiprail("audit", "verify", "--db", "sqlite:///:memory:", "--json")
    assert code == 0 and json.loads(out)["events"] == 0


def test_an_export_the_disk_cannot_hold_leaves_the_earlier_archive_as_it_was(
    shiprail: Any, rid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("audit.jsonl").write_text("the archive of last week\n", encoding="utf-8")
    real = Path.open

    class FullDisk:
        def __init__(self, file: Any) -> None:
            self.file = file

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: str) -> int:
            self.file.write(data[:10])  # part of it reached the disk
            raise OSError(28, "No space left on device")

    def full_disk(self: Path, *args: Any, **kwargs: Any) -> Any:
        file = real(self, *args, **kwargs)
        writing = "w" in (args[0] if args else kwargs.get("mode", "r"))
        return FullDisk(file) if writing and self.name.startswith(("audit.jsonl", ".audit.jsonl")) else file

    monkeypatch.setattr(Path, "open", full_disk)
    code, out, err = shiprail("audit", "export", "--out", "audit.jsonl", "--checkpoint", "checkpoint.json")
    assert (code, out, err) == (
        1,
        "",
        "error: --out audit.jsonl: cannot be written (No space left on device); nothing was written\n",
    )
    assert Path("audit.jsonl").read_text(encoding="utf-8") == "the archive of last week\n"
    assert sorted(p.name for p in Path().iterdir() if p.name.startswith(("audit", "checkpoint", "."))) == [
        ".shiprail",
        "audit.jsonl",
    ]


def test_a_bad_byte_on_a_later_line_is_placed_by_its_offset_in_the_file(shiprail: Any, rid: str) -> None:
    assert shiprail("audit", "export", "--out", "all.jsonl").code == 0
    first = Path("all.jsonl").read_bytes().split(b"\n")[0] + b"\n"
    Path("late.jsonl").write_bytes(first + b'{"seq": 2, "actor": "b\xe1d"}\n')
    code, out, err = shiprail("audit", "verify", "--file", "late.jsonl")
    where = f"byte 0xe1 at offset {len(first) + 22}"
    assert (code, out, err) == (
        2,
        "",
        f"error: late.jsonl is not an audit export: it is not UTF-8 text ({where}); {EXPORT}\n",
    )


def test_a_long_export_is_verified_without_holding_it_whole(tmp_path: Path) -> None:
    # 20,000 events: reading them all first held 2.3 kB an event (467 MB resident for 200,000) and
    # traced 16.9 MB here; read as verified, only each row's links are kept: 6.4 MB traced.
    import tracemalloc
    from datetime import UTC, datetime, timedelta

    from shiprail.cli.audit import iter_export
    from shiprail.store import audit

    payload = json.dumps({"action": "promote", "reason": "bake done; analysis passed at 10%", "to": "rolling_out"})
    path, prev, t0 = tmp_path / "long.jsonl", audit.GENESIS, datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as out:
        for seq in range(1, 20_001):
            at = t0 + timedelta(seconds=seq)
            digest = audit.compute_hash(prev, seq, at, "shiprail:controller", "release.transitioned", "c-1", payload)
            row = audit.EventRow(seq, at, "shiprail:controller", "release.transitioned", "c-1", payload, prev, digest)
            out.write(json.dumps(row.to_json()) + "\n")
            prev = digest
    tracemalloc.start()
    try:
        report = audit.verify(iter_export(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.ok, report.count, report.last_hash) == (True, 20_000, prev)
    assert peak < 10_000_000, f"{peak:,} bytes traced at the peak"


def test_audit_anchor_appends_to_the_log_shiprail_yaml_names(shiprail: Any, rid: str) -> None:
    code, out, err = shiprail("audit", "anchor")
    assert (code, out) == (2, "")
    assert err == (
        "error: --to is required: shiprail.yaml sets no audit.anchors; give the anchor log to append to "
        "(`shiprail audit anchor --to FILE`), or set audit.anchors in shiprail.yaml\n"
    )
    policy = Path("shiprail.yaml")
    policy.write_text(policy.read_text(encoding="utf-8") + "audit:\n  anchors: audit/anchors.jsonl\n", encoding="utf-8")
    code, out, err = shiprail("audit", "anchor")
    assert (code, out) == (2, "")
    assert err == (
        "error: audit.anchors in shiprail.yaml: audit/anchors.jsonl: the directory audit does not exist; "
        "create it or give another path\n"
    )
    Path("audit").mkdir()
    code, out, _ = shiprail("audit", "anchor")
    assert code == 0
    assert out.startswith("anchored seq ") and out.endswith(" to audit/anchors.jsonl, line 1\n")
    # --to still wins over the policy's log.
    assert shiprail("audit", "anchor", "--to", "other.jsonl").code == 0
    assert [len(Path(p).read_text(encoding="utf-8").splitlines()) for p in ("audit/anchors.jsonl", "other.jsonl")] == [
        1,
        1,
    ]


def test_an_unsigned_checkpoint_is_warned_of_and_a_signed_one_is_not(
    shiprail: Any, rid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = shiprail("audit", "export", "--out", "all.jsonl", "--checkpoint", "cp.json")
    assert (code, err) == (0, UNSIGNED) and "signature" not in json.loads(Path("cp.json").read_text(encoding="utf-8"))
    monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", "k" * 32)
    code, _, err = shiprail("audit", "export", "--out", "all.jsonl", "--checkpoint", "cp.json")
    assert (code, err) == (0, "") and "signature" in json.loads(Path("cp.json").read_text(encoding="utf-8"))
