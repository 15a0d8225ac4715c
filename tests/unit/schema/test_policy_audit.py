"""``audit:`` in ``shiprail.yaml``: the anchor log and how often the controller anchors, and each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail import defaults
from shiprail.errors import PlanInvalid
from shiprail.project import open_project

POLICY = "shiprail.yaml"


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def with_audit(project: Path, body: str) -> int:
    """Append ``audit:`` with ``body`` to the policy; the line of its first key."""
    path = project / POLICY
    text = path.read_text(encoding="utf-8")
    path.write_text(f"{text}audit:\n{body}", encoding="utf-8")
    return len(text.splitlines()) + 2


def problems(project: Path, body: str) -> tuple[int, list[str]]:
    line = with_audit(project, body)
    with pytest.raises(PlanInvalid) as exc:
        open_project(project)
    assert exc.value.exit_code == 2
    return line, [str(p) for p in exc.value.problems]


def test_no_anchor_log_by_default(project: Path) -> None:
    loaded = open_project(project)
    assert (loaded.policy.audit.anchors, loaded.anchor_log) == (None, None)
    assert loaded.policy.audit.anchor_every == defaults.ANCHOR_EVERY_SECONDS == 15 * 60


def test_the_anchor_log_is_relative_to_the_project_directory(project: Path) -> None:
    with_audit(project, "  anchors: audit/anchors.jsonl\n  anchor_every: 5m\n")
    loaded = open_project(project / "releases")
    assert loaded.anchor_log == project.resolve() / "audit" / "anchors.jsonl"
    assert loaded.policy.audit.anchor_every == 300


def test_an_absolute_anchor_log_stays_where_it_is(project: Path) -> None:
    with_audit(project, "  anchors: /mnt/worm/anchors.jsonl\n")
    assert open_project(project).anchor_log == Path("/mnt/worm/anchors.jsonl")


@pytest.mark.parametrize(
    ("body", "offset", "message"),
    [
        ("  anchor_every: 0s\n", 0, "audit.anchor_every: must be longer than 0s"),
        ("  anchor_every: 15\n", 0, "audit.anchor_every: a duration like 30s, 5m, 2h or 1d is required, got 15"),
        (
            '  anchors: " "\n',
            0,
            "audit.anchors: is empty; give the anchor log's file path (relative to the project directory), "
            "or leave the key out",
        ),
        ("  anchors: [a, b]\n", 0, "audit.anchors: text is required, got a list"),
        ("  anchor_evry: 5m\n", 0, "audit.anchor_evry: unknown key 'anchor_evry'; did you mean 'anchor_every'?"),
    ],
)
def test_a_mistake_names_its_line_and_key(project: Path, body: str, offset: int, message: str) -> None:
    line, found = problems(project, body)
    assert found == [f"{POLICY}:{line + offset}: {message}"]
