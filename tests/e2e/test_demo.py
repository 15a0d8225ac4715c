"""The main job passes in-process, both releases ending as they should (test_readme.py runs the installed command)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from shiprail.clock import WallClock
from shiprail.demo import release_id, run_demo
from shiprail.demo.project import BAD, GOOD
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.store import audit
from shiprail.store.db import Store


def test_demo_runs_a_good_release_to_complete_and_rolls_back_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    root = tmp_path.resolve() / "demo"
    monkeypatch.chdir(tmp_path)
    code = run_demo(Path("demo"), Console(file=out, width=200))  # relative, as `shiprail demo --dir demo`
    text = out.getvalue()
    assert code == 0, text
    assert "demo complete: every step ended as expected." in text
    assert f"✓ {release_id(GOOD)} ended complete (expected complete)" in text
    assert f"✓ {release_id(BAD)} ended rolled_back (expected rolled_back)" in text
    assert "audit chain broken at seq 2: seq 2 was altered" in text
    # serve's status API and pages, read with the token the demo gave serve, show both as they ended.
    assert re.search(rf"✓ http://127\.0\.0\.1:\d+/releases/{re.escape(release_id(BAD))}: rolled_back \(expected", text)
    assert re.search(rf"✓ http://127\.0\.0\.1:\d+/releases/{re.escape(release_id(GOOD))}: complete \(expected", text)
    # The communication plan reached a real receiver that checked every HMAC signature.
    assert re.search(r"✓ \d+ signed notifications received, 0 refused", text), text
    db = root / ".shiprail" / "shiprail.db"
    # Whitespace evened out: a long temporary path may wrap the line at any width.
    assert f"its store in {db}" in " ".join(text.split())

    # The store the demo leaves says the same: a complete release, and a rollback the contract fired.
    store = Store(f"sqlite:///{db}")
    try:
        svc = Releases(store, WallClock(), open_project(root).policy)
        good, bad = svc.get(release_id(GOOD)), svc.get(release_id(BAD))
        # The tampering was done on a copy: the store left behind holds, to export and verify.
        with store.snapshot() as s:
            head_seq, head_hash = audit.head(s)
            assert audit.verify(audit.rows(s), head_seq=head_seq, head_hash=head_hash).ok
    finally:
        store.close()
    assert "$ shiprail audit verify --db sqlite:///.shiprail/tampered.db" in text
    assert good.status == "complete"
    assert good.rollbacks == []
    assert bad.status == "rolled_back"
    [log] = bad.rollbacks
    assert log["initiated_by"] == "shiprail:controller"
    assert log["trigger"] in ("error-regression", "errors", "slow")
    # The sequential judge had its say at every analysis, whichever trigger fired first.
    [judged] = [r for r in bad.last_analysis["results"] if r["trigger"] == "error-regression"]
    assert judged["judge"]["alpha"] == 0.01
    assert log["max_duration_met"] is True
    assert log["confirmation"]["confirmed"] is True
    assert log["confirmation"]["sdks"] == 1
