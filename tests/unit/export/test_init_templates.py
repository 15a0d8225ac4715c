"""What `shiprail init` writes for this part: CI pipelines that run a release, an example retrospective."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from shiprail.cli.init import write_project
from shiprail.cli.main import app
from shiprail.retro import guide_questions

CI = ("ci/github-actions.yml", "ci/gitlab-ci.yml")
EXAMPLE = "templates/retrospective-example.md"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("init")
    write_project(path)
    return path


def _commands() -> set[tuple[str, ...]]:
    """Every ``shiprail`` command path the CLI knows, e.g. ``("release", "start")``."""
    click = typer.main.get_command(app)
    out: set[tuple[str, ...]] = set()
    for name, cmd in click.commands.items():  # type: ignore[attr-defined]
        out.add((name,))
        for sub in getattr(cmd, "commands", {}):
            out.add((name, sub))
    return out


@pytest.mark.parametrize("rel", CI)
def test_the_ci_pipelines_are_yaml_and_run_a_release_with_wait(root: Path, rel: str) -> None:
    text = (root / rel).read_text(encoding="utf-8")
    assert isinstance(yaml.safe_load(text), dict)
    assert 'shiprail release start "$RELEASE" --wait' in text
    for needed in ("release export", "release verify-package", "release notes", "plan validate"):
        assert f"shiprail {needed}" in text
    known = _commands()
    used = re.findall(r"shiprail ((?:release|plan|audit) [a-z-]+)", text)
    for command in used:
        group, name = command.split()
        assert (group, name) in known, f"{rel}: no `shiprail {command}`"


def test_the_example_retrospective_has_the_guides_sections_and_answers(root: Path) -> None:
    text = (root / EXAMPLE).read_text(encoding="utf-8")
    for q in guide_questions():
        assert f"### {q.title}" in text
    assert "_Not answered yet._" not in text
    assert "| action | owner | due | link |" in text


@pytest.mark.parametrize("rel", CI)
def test_the_ci_pipelines_name_the_channels_secrets(root: Path, rel: str) -> None:
    # `release start --wait` sends the communication plan's messages from the pipeline's job: the
    # pipelines listed only the database, audit key and releaser, so every delivery from CI failed.
    policy = yaml.safe_load((root / "shiprail.yaml").read_text(encoding="utf-8"))
    secrets = sorted(
        value for channel in policy["channels"].values() for key, value in channel.items() if key.endswith("_env")
    )
    assert secrets == ["SHIPRAIL_SLACK_URL", "SHIPRAIL_WEBHOOK_SECRET"]
    text = (root / rel).read_text(encoding="utf-8")
    assert [name for name in secrets if name not in text] == []


def _stage_script(root: Path, rel: str) -> str:
    """The pipeline's shell script that stages the release and runs its stage checks."""
    doc = yaml.safe_load((root / rel).read_text(encoding="utf-8"))
    lines = (
        [step["run"] for step in doc["jobs"]["rollout"]["steps"] if "run" in step]
        if rel.endswith("github-actions.yml")
        else doc["rollout"]["script"]
    )
    return next(line for line in lines if "release stage" in line)


@pytest.mark.parametrize("rel", CI)
@pytest.mark.parametrize(
    ("status", "ran"),
    [
        ("planned", ["release stage shop-1.0.0", "release check shop-1.0.0"]),
        ("staging", ["release check shop-1.0.0"]),
        ("rolling_out", []),
        ("paused", []),
        ("verifying", []),
        ("completed", []),
    ],
)
def test_a_pipeline_run_again_stages_and_checks_only_what_is_left(
    root: Path, rel: str, status: str, ran: list[str], tmp_path: Path
) -> None:
    # Run again on a release started before (a runner lost mid-rollout, a re-run of a passed job),
    # the pipelines ran `release stage` (refused: it is not planned) or `release check`, and failed
    # before `release start --wait` could follow or report the release. The script runs in bash -e
    # as the runners run it, with `shiprail` a stand-in that answers `release show --json` with
    # ``status`` and notes every other command.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "shiprail"
    stand_in.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "release show" ]; then echo \'{"status": "' + status + "\"}'; exit 0; fi\n"
        f'echo "$*" >> {tmp_path / "ran"}\n',
        encoding="utf-8",
    )
    stand_in.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RELEASE": "shop-1.0.0"}
    done = subprocess.run(["bash", "-e", "-c", _stage_script(root, rel)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    said = (tmp_path / "ran").read_text(encoding="utf-8").splitlines() if (tmp_path / "ran").exists() else []
    assert said == ran


@pytest.mark.parametrize("rel", CI)
def test_the_ci_pipelines_install_shiprail_from_where_the_team_keeps_it(root: Path, rel: str) -> None:
    # They ran `pip install shiprail`, which asks PyPI for that name, while docs/operations.md
    # installs shiprail from its repository: each install now takes SHIPRAIL_PIP_SPEC, and a job
    # without it stops saying so.
    text = (root / rel).read_text(encoding="utf-8")
    installs = [
        line.split("pip install", 1)[1] for line in text.splitlines() if "pip install" in line and "#" not in line
    ]
    spec = '"${SHIPRAIL_PIP_SPEC:?set SHIPRAIL_PIP_SPEC to where pip installs shiprail from}"'
    assert len(installs) == {"ci/github-actions.yml": 3, "ci/gitlab-ci.yml": 2}[rel]  # gitlab: default, rollout
    assert [i for i in installs if spec not in i] == []
    assert "SHIPRAIL_PIP_SPEC:" in text.split("\n\n", 1)[0]  # the header says what it needs


def test_every_gitlab_job_that_installs_shiprail_from_git_has_git(root: Path) -> None:
    # SHIPRAIL_PIP_SPEC is a git+https URL of the team's copy (the header's example), and pip needs
    # git for one; python:3.12-slim has none, and only the create job installed it: validate and
    # rollout failed at their first line with the documented spec.
    doc = yaml.safe_load((root / "ci/gitlab-ci.yml").read_text(encoding="utf-8"))
    assert "slim" in doc["default"]["image"]
    jobs = {name: job for name, job in doc.items() if isinstance(job, dict) and "script" in job}
    without_git = []
    for name, job in jobs.items():
        lines = job.get("before_script", doc["default"]["before_script"])
        pip = next(i for i, line in enumerate(lines) if "SHIPRAIL_PIP_SPEC" in line)
        if not any("install -y -qq git" in line for line in lines[:pip]):
            without_git.append(name)
    assert (sorted(jobs), without_git) == (["create", "rollout", "validate"], [])
