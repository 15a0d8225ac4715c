"""bench/replay.py's flags: a bad one is refused with one sentence and exit code 2, before anything is measured."""

from __future__ import annotations

import pytest
from bench import replay


def refused(parse: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The last line ``parse(argv)`` wrote on stderr, having exited with code 2."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)  # type: ignore[operator]
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("url", ["notaurl", "sqlite:///x.db"])
def test_replay_refuses_a_pg_url_that_is_not_postgresql(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(replay.parse_args, ["--pg", url], capsys)
    assert line == f"python -m bench.replay: error: --pg takes a postgresql:// URL, not {url!r}; or give --no-pg"


def test_replay_refuses_sizes_that_are_not_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(replay.parse_args, ["--sizes", "100,,x"], capsys)
    assert line == "python -m bench.replay: error: --sizes takes comma-separated numbers of analyses, not '100,,x'"


def test_replay_measures_each_size_once() -> None:
    assert replay.parse_args(["--sizes", "1000,100,1000"]).sizes == (100, 1000)


def test_replay_says_in_one_sentence_that_postgresql_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/test"
    assert replay.main(["--sizes", "3", "--repeat", "1", "--pg", url, "--no-docs"]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert out.strip().splitlines()[-1].startswith(f"PostgreSQL at {url} could not be used (connection failed:")
    assert out.strip().splitlines()[-1].endswith("; give --no-pg to skip it")
