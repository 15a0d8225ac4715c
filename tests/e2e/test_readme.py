"""The README's first command, followed literally in a copy of the repository with no .venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands() -> None:
    assert readme_commands() == ["./scripts/demo.sh", "./scripts/test.sh"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to copy the tracked files")
def test_first_command_on_a_fresh_checkout(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        src = REPO / rel
        if src.is_file():
            dest = tmp_path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "SHIPRAIL_"))}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    # pytest-xdist's workers set COLUMNS=80 and LINES=24, which a width is then taken from: a fresh
    # machine's shell piping the demo has neither.
    for name in ("COLUMNS", "LINES"):
        env.pop(name, None)
    first = readme_commands()[0]
    result = subprocess.run(first, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The installed `shiprail demo` command (what scripts/demo.sh runs), every step as expected.
    assert "demo complete: every step ended as expected." in result.stdout
    assert "✗" not in result.stdout
    # Piped, each line is printed whole: a plain console folded them at 80 columns.
    assert re.search(
        r"webhook rolled_back +shop 1\.2\.0 rolled back: the router confirmed weight 0 +\(signature verified\)",
        result.stdout,
    )
    assert (tmp_path / ".venv" / "bin" / "shiprail").exists()


def tour_block(heading: str) -> list[tuple[str, int]]:
    """The commands of the README's bash block after ``heading``, each with the exit code its comment
    promises (``# exit 1: …``, else 0); lines continued with a backslash are joined."""
    text = (REPO / "README.md").read_text()
    block = re.search(re.escape(heading) + r"\s*```bash\n(.*?)```", text, re.S)
    assert block is not None, heading
    commands: list[tuple[str, int]] = []
    pending = ""
    for line in block.group(1).splitlines():
        pending += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if line.rstrip().endswith("\\"):
            continue
        command, _, comment = pending.partition("  #")
        exit_code = 1 if re.search(r"\bexit 1\b", comment) else 0
        commands.append((" ".join(command.split()), exit_code))
        pending = ""
    return commands


def test_the_tours_first_gate_runs_as_its_comments_say(tmp_path: Path) -> None:
    # The tour is what a newcomer types first: a command it shows that fails (or passes) other than
    # its comment says is a broken promise, as when override came to need a refused attempt first.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPRAIL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    shiprail = f"{sys.executable} -m shiprail"
    assert subprocess.run(f"{shiprail} init", shell=True, cwd=tmp_path, env=env, capture_output=True).returncode == 0
    first = tour_block("Take a release through its first gate:")
    assert [exit_code for _, exit_code in first].count(1) == 1  # the refused stage
    # Then the start gates, up to the rollout itself (the tour's nginx is not there to route).
    then = tour_block("as\nabove:")
    then = then[: next(i for i, (command, _) in enumerate(then) if "--wait" in command)]
    assert [exit_code for _, exit_code in then] == [1, 0, 1, 0]  # check and start refused, then overridden
    commands = first + then
    for command, expected in commands:
        assert command.startswith("shiprail "), command
        done = subprocess.run(
            shiprail + command.removeprefix("shiprail"),
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == expected, f"{command}: exit {done.returncode}\n{done.stdout}{done.stderr}"
