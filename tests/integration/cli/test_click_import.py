"""shiprail's CLI imports with every Typer that pyproject allows (``typer>=0.16,<0.27``).

Typer vendors Click as ``typer._click`` only from 0.26 on; before, it uses the ``click`` package.
The CLI catches Click's usage errors (for ``--json``) from whichever one Typer raises.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shiprail.cli import main

SRC = str(Path(main.__file__).resolve().parents[2])

# What a Typer before 0.26 looks like to the import: no typer._click (a None in sys.modules makes
# the import of that name fail with ImportError, as a missing module does).
WITHOUT_VENDORED_CLICK = f"""
import sys
sys.path.insert(0, {SRC!r})
import typer
sys.modules["typer._click"] = None
sys.modules["typer._click.exceptions"] = None
import click.exceptions
import shiprail.cli.main as m
print(m.ClickException is click.exceptions.ClickException, m.Abort is click.exceptions.Abort)
"""


def test_the_cli_imports_when_typer_has_no_vendored_click() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_VENDORED_CLICK], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True True\n", "")
