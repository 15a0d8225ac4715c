"""The main job passes, in-process and as the installed command."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from shiprail.demo import RID, run_demo


def test_demo_passes_and_leaves_a_project(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_demo(tmp_path / "demo", Console(file=out, width=200))
    text = out.getvalue()
    assert code == 0, text
    assert "demo complete: every step ended as expected." in text
    assert "audit chain broken at seq 2: seq 2 was altered" in text
    assert (tmp_path / "demo" / ".shiprail" / "shiprail.db").is_file()
    assert f"shiprail release show {RID}" in text


def test_demo_command_exits_zero() -> None:
    exe = shutil.which("shiprail", path=str(Path(sys.executable).parent))
    assert exe is not None
    result = subprocess.run([exe, "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout
