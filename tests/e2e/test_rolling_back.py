"""Rolling back a shiprail upgrade as operations.md tells it, with a real older shiprail: this one
without its newest migration, run as its own process on the store this one migrated."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shiprail
from shiprail import __version__
from shiprail.cli.main import main
from shiprail.store.db import SCHEMA_HEAD, known_revisions

OLDER_HEAD = known_revisions()[-2]


@pytest.fixture
def older(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this shiprail's package without its newest migration: the shiprail before it (its source root)."""
    root = tmp_path_factory.mktemp("older")
    package = root / "shiprail"
    shutil.copytree(Path(shiprail.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    [newest] = (package / "store" / "migrations" / "versions").glob(f"{SCHEMA_HEAD}_*.py")
    newest.unlink()
    db = package / "store" / "db.py"
    db.write_text(re.sub(r'^SCHEMA_HEAD = ".*"$', f'SCHEMA_HEAD = "{OLDER_HEAD}"', db.read_text(), flags=re.M))
    return root


def run_older(older: Path, project: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPRAIL_")}
    env.update(PYTHONPATH=str(older), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-m", "shiprail", *args], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


def test_an_upgrade_rolled_back_with_migrate_to_leaves_a_store_the_older_shiprail_runs_on(
    project: Path, older: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    for name in ("SHIPRAIL_DATABASE_URL", "SHIPRAIL_USER", "SHIPRAIL_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice"]) == 0
    store = project / ".shiprail" / "shiprail.db"
    url = f"sqlite:///{store}"
    capsys.readouterr()

    # The older shiprail on the store this one migrated: refused, naming the revision to go back to.
    assert run_older(older, project, "release", "list") == (
        1,
        "",
        f"error: the database {url} is at schema revision {SCHEMA_HEAD}, which this shiprail ({__version__}, newest "
        f"revision {OLDER_HEAD}) does not know: a newer shiprail migrated it; run that version or newer, or take the "
        f"store back with it first (`shiprail migrate --to {OLDER_HEAD}`, as in docs/operations.md) "
        "(nothing was changed)\n",
    )

    assert main(["migrate", "--to", OLDER_HEAD]) == 0
    assert capsys.readouterr().out == (
        f"migrated the database {url} back from schema revision {SCHEMA_HEAD} to {OLDER_HEAD}\n"
    )
    code, out, err = run_older(older, project, "release", "list", "--json")
    assert (code, err, [r["id"] for r in json.loads(out)]) == (0, "", ["checkout-2.4.0"])
    code, out, err = run_older(older, project, "audit", "verify")
    assert (code, out.startswith("audit chain ok: "), err) == (0, True, "")

    # Upgrading again: the newer shiprail takes it forward, the release still there.
    assert main(["migrate"]) == 0
    assert (
        capsys.readouterr().out == f"migrated the database {url} from schema revision {OLDER_HEAD} to {SCHEMA_HEAD}\n"
    )
    assert main(["release", "list", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["checkout-2.4.0"]
