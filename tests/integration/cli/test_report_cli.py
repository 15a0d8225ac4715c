"""``shiprail release verify-package --chain`` in a project from ``shiprail init``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa


def test_a_chain_file_of_one_release_only_is_refused_as_the_wrong_file(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0-2", "--as", "bob").code == 0
    assert shiprail("release", "export", "checkout-2.4.0-2", "--out", "pk").code == 0
    assert shiprail("audit", "export", "--release", "checkout-2.4.0-2", "--out", "one.jsonl").code == 0
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "one.jsonl")
    assert (code, out, err) == (
        2,
        "",
        "error: --chain: one.jsonl holds only the events of release checkout-2.4.0-2 (seq 3 to 6), as "
        "`shiprail audit export --release` writes them; a package is checked against the whole chain: write it "
        "with `shiprail audit export --out FILE`\n",
    )
    Path("a-dir").mkdir()
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "a-dir")
    assert (code, out, err) == (
        2,
        "",
        "error: --chain: a-dir is a directory; give the file `shiprail audit export --out FILE` wrote\n",
    )
    # The whole chain checks it.
    assert shiprail("audit", "export", "--out", "all.jsonl").code == 0
    assert shiprail("release", "verify-package", "pk", "--chain", "all.jsonl").code == 0


def _delete_event(seq: int) -> None:
    """What someone with file access does: drop the guard, delete a row, put the guard back."""
    engine = sa.create_engine("sqlite:///.shiprail/shiprail.db")
    with engine.begin() as conn:
        ddl = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'audit_events_no_delete'")).scalar_one()
        conn.execute(sa.text("DROP TRIGGER audit_events_no_delete"))
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": seq})
        conn.execute(sa.text(ddl))
    engine.dispose()


def _events() -> list[tuple[int, str]]:
    engine = sa.create_engine("sqlite:///.shiprail/shiprail.db")
    with engine.begin() as conn:
        rows = [(r[0], r[1]) for r in conn.execute(sa.text("SELECT seq, kind FROM audit_events ORDER BY seq"))]
    engine.dispose()
    return rows


@pytest.mark.parametrize("as_json", [False, True])
def test_a_release_is_not_exported_from_a_broken_audit_chain(shiprail: Any, as_json: bool) -> None:
    """Another release's event deleted: the package's own events would all check, and it would look
    fine to an auditor. Refused: no package, no package.exported event on top of the broken chain."""
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0-2", "--as", "bob").code == 0
    _delete_event(1)
    before = _events()
    code, out, err = shiprail("release", "export", "checkout-2.4.0-2", "--out", "pk", *(["--json"] if as_json else []))
    message = (
        "the audit chain is broken at seq 1: seq 1 missing: the chain jumps from 0 to 2; nothing was exported: "
        "run `shiprail audit verify` to see it, or export with --broken-chain to investigate (the package is "
        "then marked as exported from a broken chain)"
    )
    if as_json:
        assert (code, err) == (1, "")
        assert json.loads(out) == {"ok": False, "error": message, "exit_code": 1}
    else:
        assert (code, out, err) == (1, "", f"error: {message}\n")
    assert not Path("pk").exists()
    assert _events() == before


def test_a_package_exported_from_a_broken_chain_on_purpose_is_marked_and_never_holds(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0-2", "--as", "bob").code == 0
    _delete_event(1)
    code, out, err = shiprail("release", "export", "checkout-2.4.0-2", "--out", "pk", "--broken-chain")
    assert (code, err) == (0, "")
    assert out.startswith("wrote the package of checkout-2.4.0-2 to pk: ")
    assert out.endswith("; the audit chain is broken at seq 1: the package is marked so\n")
    release = json.loads(Path("pk/release.json").read_text())
    assert release["audit"]["chain_broken"] == {
        "seq": 1,
        "problem": "missing",
        "detail": "seq 1 missing: the chain jumps from 0 to 2",
    }
    assert "exported from a broken audit chain" in Path("pk/README.md").read_text()
    exported = _events()[-1]
    assert exported[1] == "package.exported"
    code, out, err = shiprail("release", "verify-package", "pk")
    assert (code, out) == (1, "")
    assert err == (
        "error: the package pk does not hold: release.json: the package was exported from a broken audit chain "
        "(seq 1 missing: the chain jumps from 0 to 2)\n"
    )


def test_export_into_a_file_says_it_is_a_file(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    code, out, err = shiprail("release", "export", "checkout-2.4.0", "--out", "shiprail.yaml")
    assert (code, out, err) == (2, "", "error: --out shiprail.yaml is a file; name a new or empty directory\n")
    Path("full").mkdir()
    Path("full/x").write_text("x")
    code, out, err = shiprail("release", "export", "checkout-2.4.0", "--out", "full")
    assert (code, out, err) == (2, "", "error: --out full is not an empty directory; name a new one\n")
