"""bench/sdk.py's flags: a bad one is refused with one sentence and exit code 2, before anything runs."""

from __future__ import annotations

import pytest
from bench import sdk


def refused(parse: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The last line ``parse(argv)`` wrote on stderr, having exited with code 2."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)  # type: ignore[operator]
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_sdk_refuses_an_unknown_contender(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(sdk.parse_args, ["--contenders", "shiprail,nope"], capsys)
    assert line == (
        "python -m bench.sdk: error: --contenders takes shiprail, Unleash, LaunchDarkly, "
        "GrowthBook (per request), GrowthBook (shared), not nope"
    )


def test_sdk_takes_known_contenders_in_any_case() -> None:
    args = sdk.parse_args(["--contenders", "SHIPRAIL, unleash"])
    assert [c.name for c in sdk.selected(args.contenders)] == ["shiprail", "Unleash"]
