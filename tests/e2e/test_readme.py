"""The README's first command, followed literally in a copy of the repository with no .venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
    first = readme_commands()[0]
    result = subprocess.run(first, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The installed `shiprail demo` command (what scripts/demo.sh runs), every step as expected.
    assert "demo complete: every step ended as expected." in result.stdout
    assert "✗" not in result.stdout
    assert (tmp_path / ".venv" / "bin" / "shiprail").exists()
