"""``shiprail demo --dir`` where something is already there: refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.cli.main import main


def contents(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_directory_that_holds_a_project_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A demo kept with --dir, or a real project: run there, the demo overwrote shiprail.yaml and
    # the plans, created shop-1.1.0-2 in the kept store and failed every step after.
    (tmp_path / "shiprail.yaml").write_text("version: 1\n")
    (tmp_path / ".shiprail").mkdir()
    (tmp_path / ".shiprail" / "shiprail.db").write_bytes(b"the store")
    (tmp_path / "releases").mkdir()
    before = contents(tmp_path)
    assert main(["demo", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: --dir {tmp_path} already holds files (.shiprail, releases, shiprail.yaml); the demo writes "
        "its own project and store there: give a new or empty directory\n"
    )
    assert contents(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shiprail", "releases", "shiprail.yaml"]


def test_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["demo", "--dir", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err == (
        f"error: --dir {tmp_path / 'f'} is a file; give a new or empty directory for the demo project\n"
    )
    assert (tmp_path / "f").read_text() == "x"
