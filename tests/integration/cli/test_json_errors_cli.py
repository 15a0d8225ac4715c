"""``--json`` errors: every command that takes ``--json`` answers a script in JSON, whatever stops it.

Errors shiprail raises (bad input, a store missing or unreachable, no project) were JSON already;
the ones the command line itself stops at, before the command runs (a missing argument or option,
an option it does not know, a value of the wrong type), were Typer's boxed text on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main

from shiprail.cli.main import app


def _json_commands() -> list[list[str]]:
    """Every command (as its words) that takes ``--json``, read from the command tree."""

    def walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
        # Typer's groups are not click.Group (Typer vendors its own click): told apart by their subcommands.
        subcommands: dict[str, Any] | None = getattr(cmd, "commands", None)
        if subcommands is not None:
            return [pair for name in sorted(subcommands) for pair in walk(subcommands[name], [*path, name])]
        return [(path, cmd)]

    return [path for path, cmd in walk(typer.main.get_command(app), []) if any("--json" in p.opts for p in cmd.params)]


JSON_COMMANDS = _json_commands()


def test_the_commands_that_take_json_are_the_ones_the_readme_says() -> None:
    """All but serve, controller, demo, version and audit export (README: "Most commands take --json")."""
    assert len(JSON_COMMANDS) == 30
    assert ["release", "export"] in JSON_COMMANDS and ["audit", "verify"] in JSON_COMMANDS


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=" ".join)
def test_an_unknown_option_is_a_json_error_on_stdout(shiprail: Any, command: list[str]) -> None:
    code, out, err = shiprail(*command, "--json", "--no-such-flag")
    assert (code, err) == (2, "")
    assert json.loads(out) == {
        "ok": False,
        "error": f"no such option: --no-such-flag; see `shiprail {' '.join(command)} --help`",
        "exit_code": 2,
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["release", "show", "--json"], "missing argument 'RELEASE_ID'; see `shiprail release show --help`"),
        (
            ["release", "export", "x", "--json"],
            "missing option '--out'; see `shiprail release export --help`",
        ),
        (
            ["release", "start", "x", "--timeout", "soon", "--json"],
            "invalid value for '--timeout': 'soon' is not a number; see `shiprail release start --help`",
        ),
        (
            ["judge", "x.csv", "--consecutive", "two", "--json"],
            "invalid value for '--consecutive': 'two' is not a whole number; see `shiprail judge --help`",
        ),
        (  # numbers in other scripts' digits: click's float() and int() read them, files refuse them
            ["judge", "x.csv", "--alpha", "\u0660.\u0660\u0665", "--json"],
            "invalid value for '--alpha': '\u0660.\u0660\u0665' is not a number; write it in ASCII digits (0-9); "
            "see `shiprail judge --help`",
        ),
        (
            ["judge", "x.csv", "--consecutive", "\uff13", "--json"],
            "invalid value for '--consecutive': '\uff13' is not a whole number; write it in ASCII digits (0-9); "
            "see `shiprail judge --help`",
        ),
        (
            ["release", "start", "x", "--timeout", "\u0665", "--json"],
            "invalid value for '--timeout': '\u0665' is not a number; write it in ASCII digits (0-9); "
            "see `shiprail release start --help`",
        ),
        (  # a float holds neither: 1e-400 read as 0 (--timeout 0 gives up at once), 1e400 as infinity
            ["release", "start", "x", "--wait", "--timeout", "1e-400", "--json"],
            "invalid value for '--timeout': 1e-400 is too small to hold and would read as 0; write 0 or a larger "
            "number; see `shiprail release start --help`",
        ),
        (
            ["judge", "x.csv", "--alpha", "1e400", "--json"],
            "invalid value for '--alpha': 1e400 is too large; give a smaller number; see `shiprail judge --help`",
        ),
        (
            ["release", "check", "x", "--only", "lint", "--json"],
            "invalid value for '--only': 'lint' is not one of 'tests', 'load_test', 'all'; "
            "see `shiprail release check --help`",
        ),
        (
            ["release", "approve", "a", "b", "--json"],
            "got unexpected extra argument(s) (b); see `shiprail release approve --help`",
        ),
    ],
)
def test_a_command_line_the_command_cannot_run_is_a_json_error(shiprail: Any, args: list[str], error: str) -> None:
    code, out, err = shiprail(*args)
    assert (code, err) == (2, "")
    assert json.loads(out) == {"ok": False, "error": error, "exit_code": 2}


def test_without_json_a_usage_error_is_still_typer_s_text_on_stderr(shiprail: Any) -> None:
    code, out, err = shiprail("release", "show")
    assert (code, out) == (2, "")
    assert "Missing argument 'RELEASE_ID'." in err


@pytest.mark.parametrize(
    "command",
    [["release", "list"], ["release", "show", "x"], ["audit", "verify"], ["controllers"], ["release", "notes", "x"]],
    ids=" ".join,
)
def test_a_store_missing_unreachable_or_not_started_is_a_json_error(
    shiprail: Any, command: list[str], tmp_path: Path
) -> None:
    code, out, err = shiprail(*command, "--json", "--db", f"sqlite:///{tmp_path}/typo.db")
    assert (code, err) == (2, "")
    assert json.loads(out)["error"].startswith(f"no shiprail store at {tmp_path}/typo.db; check --db")
    code, out, err = shiprail(*command, "--json", "--db", "postgresql://nobody@127.0.0.1:1/none")
    assert (code, err) == (1, "")
    assert json.loads(out)["error"].startswith("cannot open the database postgresql+psycopg://nobody@127.0.0.1:1/none")
    if command in (["audit", "verify"], ["controllers"]):
        # A project that recorded nothing yet: the commands that only read create no store.
        code, out, err = shiprail(*command, "--json")
        assert (code, err) == (2, "")
        assert json.loads(out)["error"] == (
            f"no shiprail store at {Path.cwd() / '.shiprail' / 'shiprail.db'}; this project has recorded nothing "
            "yet (`shiprail release create` starts its store)"
        )


@pytest.mark.parametrize(
    "command", [["release", "list"], ["plan", "show", "x.yaml"], ["signal", "checkout", "x"]], ids=" ".join
)
def test_outside_a_project_is_a_json_error(
    shiprail: Any, command: list[str], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    code, out, err = shiprail(*command, "--json")
    assert (code, err) == (2, "")
    assert json.loads(out)["exit_code"] == 2
