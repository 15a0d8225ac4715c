"""docs/cli.md documents every command and every option that ``--help`` shows, and no other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from shiprail.cli.main import app

CLI_MD = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
SECTION = re.compile(r"^### (shiprail [^\n]+)\n(.*?)(?=^##|\Z)", re.S | re.M)


def leaf_commands() -> dict[str, Any]:
    """Every command that runs something, by its full name: ``{"shiprail release start": command}``."""
    found: dict[str, Any] = {}

    def walk(command: Any, name: str) -> None:
        subcommands = getattr(command, "commands", None)  # Typer's groups are not always click.Group
        if subcommands is None:
            found[name] = command
        for sub_name, sub in subcommands.items() if subcommands else ():
            walk(sub, f"{name} {sub_name}")

    walk(typer.main.get_command(app), "shiprail")
    return found


def sections() -> dict[str, str]:
    """Each command's section of docs/cli.md; ``### shiprail release promote / pause`` is two commands."""
    found: dict[str, str] = {}
    for heading, body in SECTION.findall(CLI_MD.read_text(encoding="utf-8")):
        first, *others = [part.strip() for part in heading.split(" / ")]
        group = first.rsplit(" ", 1)[0]
        for name in [first, *(f"{group} {other}" for other in others)]:
            found[name] = body
    return found


def option_rows(body: str) -> str:
    """The first cells of a section's tables, where its arguments and options are named."""
    return "\n".join(line.split("|")[1] for line in body.splitlines() if line.startswith("| `"))


def long_options(command: Any) -> set[str]:
    return {
        opt
        for param in command.params
        if param.param_type_name == "option"
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("--") and opt != "--help"
    }


COMMANDS = leaf_commands()


def test_every_command_has_a_section_and_every_section_a_command() -> None:
    assert sorted(set(COMMANDS) - set(sections())) == []
    assert sorted(set(sections()) - set(COMMANDS)) == []


def test_the_command_table_links_every_command() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    table = text.split("\n| command | what it does |", 1)[1].split("\n\n", 1)[0]
    listed = set()
    for cell in re.findall(r"^\| \[`([^`]+)`\]", table, re.M):
        first, *others = [part.strip() for part in cell.split(" / ")]
        group = first.rsplit(" ", 1)[0]
        listed |= {first, *(f"{group} {other}" for other in others)}
    assert sorted(set(COMMANDS) - listed) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_of_a_command_is_in_its_table(name: str) -> None:
    rows = option_rows(sections().get(name, ""))
    undocumented = sorted(opt for opt in long_options(COMMANDS[name]) if not re.search(rf"`{opt}\b", rows))
    assert undocumented == [], f"docs/cli.md, {name}: no row for {', '.join(undocumented)}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_in_a_commands_table_is_one_it_takes(name: str) -> None:
    documented = set(re.findall(r"`(--[a-z][a-z0-9-]*)", option_rows(sections().get(name, ""))))
    assert sorted(documented - long_options(COMMANDS[name])) == []


def shown(value: Any) -> str:
    """A default as docs/cli.md writes it: 1.0 as 1, an enum member as its value."""
    value = getattr(value, "value", value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_default_a_table_quotes_is_the_options(name: str) -> None:
    rows = [line for line in sections().get(name, "").splitlines() if line.startswith("| `--")]
    wrong = []
    for param in COMMANDS[name].params:
        if param.param_type_name != "option" or param.default in (None, False, "", [], ()):
            continue
        row = next((r for r in rows if re.match(rf"\| `{param.opts[0]}\b", r)), "")
        quoted = re.search(r"default:? `?([^`;,)]+)", row)
        if quoted and quoted.group(1).strip() != shown(param.default):
            wrong.append(f"{param.opts[0]}: docs say {quoted.group(1).strip()}, the option has {shown(param.default)}")
    assert wrong == []
