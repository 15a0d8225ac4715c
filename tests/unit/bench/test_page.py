"""bench/page.py: a page that could not be rewritten is refused before a run starts, not after it."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import burst_guard, judges, replay, revert, sdk, tail_frontier
from bench.page import docs_problem


def test_a_page_in_an_existing_directory_can_be_rewritten(tmp_path: Path) -> None:
    assert docs_problem(tmp_path / "benchmarks.md") is None
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n", encoding="utf-8")
    assert docs_problem(tmp_path / "benchmarks.md") is None


def test_a_missing_directory_or_a_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "benchmarks.md"
    assert docs_problem(missing) == (
        f"{missing.parent} does not exist, so {missing} could not be rewritten: run this from the repository "
        "root, or give --docs or --no-write"
    )
    assert docs_problem(tmp_path) == f"--docs {tmp_path} is a directory, not the page to rewrite"


@pytest.mark.parametrize(
    ("parse", "prog"),
    [
        (judges.parse_args, "python -m bench.judges"),
        (sdk.parse_args, "python -m bench.sdk"),
        (revert.parse_args, "python -m bench.revert"),
        (tail_frontier.parse_args, "tail_frontier.py"),
        (burst_guard.parse_args, "burst_guard.py"),
    ],
)
def test_every_program_refuses_a_page_it_could_not_write_before_running(
    parse: object, prog: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "nowhere" / "benchmarks.md"
    with pytest.raises(SystemExit) as exc:
        parse(["--docs", str(page)])  # type: ignore[operator]
    assert exc.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith(f": error: {docs_problem(page)}")
    assert line.startswith(prog) or not prog.startswith("python -m")  # the others are named by sys.argv[0]


def test_replay_run_outside_the_repository_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        replay.parse_args([])
    assert exc.value.code == 2
    assert "could not be rewritten: run this from the repository root" in capsys.readouterr().err
    assert replay.parse_args(["--no-docs"]).no_docs is True
