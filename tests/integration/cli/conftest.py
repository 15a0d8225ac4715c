"""The CLI run in-process in a project from ``shiprail init``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shiprail.cli.main import main


class Result:
    """What one command did: its exit code, stdout and stderr."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __iter__(self) -> Iterator[Any]:
        return iter((self.code, self.out, self.err))

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def shiprail(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``shiprail(*args)`` runs the CLI in the example project and returns code, stdout and stderr."""
    monkeypatch.chdir(project)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHIPRAIL_USER", raising=False)
    capsys.readouterr()

    def run(*args: str) -> Result:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
