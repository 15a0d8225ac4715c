"""``--help`` of every command: exit 0, and usage written as docs/cli.md shows it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from shiprail.cli.main import app


def commands() -> list[list[str]]:
    """The path of every command and group under ``shiprail``, e.g. ``["release", "start"]``."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        # Typer's groups are not always click.Group subclasses: whatever has subcommands is one.
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "shiprail")
def test_help_exits_zero_and_names_arguments_in_capitals(path: list[str], shiprail: Any) -> None:
    code, out, _ = shiprail(*path, "--help")
    assert code == 0
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert re.search(r"Usage: shiprail\b", usage)
    # Typer 0.27+ writes `{file}` and `<path>`; 0.29 also `<bool>` after every flag (pyproject pins below).
    assert "{" not in usage and "<" not in out


def test_a_group_without_a_command_prints_its_help(shiprail: Any) -> None:
    code, out, err = shiprail("release")
    assert code == 2  # Click's usage error: a command is missing
    assert "Usage: shiprail release [OPTIONS] COMMAND [ARGS]..." in out + err
    assert " start " in out + err
