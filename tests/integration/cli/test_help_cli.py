"""``--help`` of every command: exit 0, and usage written as docs/cli.md shows it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from shiprail import __version__
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
def test_dash_h_is_help_too(path: list[str], shiprail: Any) -> None:
    # `shiprail release start -h`, as kubectl and argo take it, was "No such option: -h" (exit 2).
    code, out, _ = shiprail(*path, "-h")
    assert (code, out) == (0, shiprail(*path, "--help").out)


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


def help_text(shiprail: Any, *path: str) -> str:
    """``--help`` of a command as one line of words, without Rich's boxes."""
    out = str(shiprail(*path, "--help").out)
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())


@pytest.mark.parametrize("command", ["start", "promote", "pause", "resume", "rollback"])
def test_the_commands_that_take_a_plan_file_say_so(command: str, shiprail: Any) -> None:
    # Each takes a release's plan file too (docs/cli.md); promote, pause, resume and rollback said
    # "Release id" only, and start's usage named its argument TARGET where the docs say RELEASE_ID|PLAN_FILE.
    text = help_text(shiprail, "release", command)
    assert "or its plan file." in text
    usage = "RELEASE_ID|PLAN_FILE" if command == "start" else "RELEASE_ID"
    assert f"Usage: shiprail release {command} [OPTIONS] {usage} " in text


def test_signal_says_any_name_may_send_it(shiprail: Any) -> None:
    # `signal --as` takes any name (a CI job, an app); its help said "a person in shiprail.yaml".
    text = help_text(shiprail, "signal")
    assert "--as TEXT Who or what sent it: any name (a person, a CI job, an app)." in text
    assert "a person in shiprail.yaml" not in text


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ["release", "status", "checkout-2.4.0"],
            "No such command 'status': `shiprail release show RELEASE_ID` shows where a release stands, "
            "`shiprail release list` every release.",
        ),
        (
            ["release", "abort", "checkout-2.4.0"],
            "No such command 'abort': `shiprail release rollback RELEASE_ID` puts all traffic back on the baseline.",
        ),
        (["rollback", "checkout-2.4.0"], "No such command 'rollback': it is `shiprail release rollback`."),
        (["export"], "No such command 'export': it is `shiprail audit export` or `shiprail release export`."),
    ],
)
def test_an_unknown_command_a_newcomer_types_names_the_one_that_does_it(
    args: list[str], sentence: str, shiprail: Any
) -> None:
    # `release status` (Argo Rollouts' word) was answered "Did you mean 'start'?", which starts a
    # rollout; `shiprail rollback` (no group) got no hint at all.
    result = shiprail(*args, "--json")
    assert result.code == 2
    group = " ".join(["shiprail", *args[:1]]) if args[0] == "release" else "shiprail"
    message = sentence[:1].lower() + sentence[1:-1]
    assert result.json() == {"ok": False, "error": f"{message}; see `{group} --help`", "exit_code": 2}


def test_an_unknown_command_that_is_only_a_typo_keeps_typers_guess(shiprail: Any) -> None:
    code, out, err = shiprail("release", "statsu")
    assert code == 2
    assert "No such command 'statsu'. Did you mean 'start'?" in out + err


def test_init_says_it_writes_the_ci_pipelines_too(shiprail: Any) -> None:
    # `shiprail init` writes ci/github-actions.yml and ci/gitlab-ci.yml (docs/cli.md); its help and
    # `shiprail --help` left them out.
    assert "Write shiprail.yaml, an example service and release plan, templates to copy, and CI pipelines." in (
        help_text(shiprail, "init")
    )


def test_rollback_names_everyone_who_may_roll_back(shiprail: Any) -> None:
    # Its help said "(releaser or on-call)"; the owner and an executive may too (docs/concepts.md).
    assert "the baseline (the owner, a releaser, on-call or an executive); the controller confirms the revert." in (
        help_text(shiprail, "release", "rollback")
    )


def test_version_as_an_option_prints_the_version_as_the_command_does(shiprail: Any) -> None:
    # `shiprail --version`, what a newcomer types first, was "No such option: --version" (exit 2).
    assert tuple(shiprail("--version")) == (0, f"{__version__}\n", "")
    assert tuple(shiprail("version")) == (0, f"{__version__}\n", "")
    # A command's own --version (signal's: the version a count is about) is still its own.
    assert "--version TEXT The version it is about" in help_text(shiprail, "signal")
