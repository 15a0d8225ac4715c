"""bench/revert.py's flags: a bad one is refused with one sentence and exit code 2, before any process starts."""

from __future__ import annotations

import pytest
from bench import revert


def refused(parse: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The last line ``parse(argv)`` wrote on stderr, having exited with code 2."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)  # type: ignore[operator]
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("rate", ["0", "-5", "nan", "inf"])
def test_revert_refuses_a_rate_that_is_not_a_positive_number(rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(revert.parse_args, ["--rate", rate], capsys)
    assert line == f"python -m bench.revert: error: --rate must be a positive number of requests a second, not {rate}"
