"""``shiprail init`` where something is in the way: refused whole, before any file is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shiprail.cli.main import main


def init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init", *args])
    return code, capsys.readouterr().err


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_file_as_the_project_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert init(capsys, str(tmp_path / "f")) == (
        2,
        f"error: {tmp_path / 'f'} is a file, not a directory; give a directory for the new project\n",
    )
    assert files_under(tmp_path) == ["f"]


def test_a_file_where_a_directory_goes_leaves_nothing_half_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ci").write_text("x")
    assert init(capsys, str(tmp_path)) == (
        2,
        f"error: {tmp_path / 'ci'} is a file where shiprail init writes a directory; move it aside\n",
    )
    assert files_under(tmp_path) == ["ci"]


def test_a_directory_where_a_file_goes_even_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shiprail.yaml").mkdir()
    assert init(capsys, str(tmp_path), "--force") == (
        2,
        f"error: {tmp_path / 'shiprail.yaml'} is a directory where shiprail init writes a file; move it aside\n",
    )
    assert files_under(tmp_path) == ["shiprail.yaml"]


@pytest.mark.parametrize("as_json", [False, True])
def test_a_directory_under_a_file_is_refused_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    """The project directory cannot be made (a part of its path is a file): no traceback, nothing written."""
    (tmp_path / "f").write_text("x")
    code = main(["init", str(tmp_path / "f" / "sub"), *(["--json"] if as_json else [])])
    out, err = capsys.readouterr()
    message = (
        f"{tmp_path / 'f' / 'sub'} cannot be created (a part of its path is a file); "
        "give a directory for the new project"
    )
    if as_json:
        assert (code, err) == (2, "")
        assert json.loads(out) == {"ok": False, "error": message, "exit_code": 2}
    else:
        assert (code, out, err) == (2, "", f"error: {message}\n")
    assert files_under(tmp_path) == ["f"]


def test_the_plan_template_says_error_rates_are_fractions_not_percentages(tmp_path: Path) -> None:
    # Its header said "percentages are plain numbers (10 means 10%)", so `above: 1` for "1% of
    # requests fail" looked right; an error rate is a fraction (0.01), as its triggers are written.
    assert main(["init", str(tmp_path)]) == 0
    header = (tmp_path / "templates" / "release-plan.yaml").read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "weights are plain numbers (10 means 10%), error rates fractions (0.01 means 1%)" in header
    assert "percentages are plain numbers" not in header
