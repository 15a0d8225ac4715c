"""``shiprail release check``: run a release's stage checks and record them as gate evidence."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shiprail.checks.stage import Only, run_stage_checks
from shiprail.checks.tests import CheckResult
from shiprail.cli.context import actor, releases
from shiprail.cli.output import ActorOpt, DbOpt, JsonOpt, cli_console, console, emit_json
from shiprail.project import open_project

# Progress goes to stderr, so stdout stays the table (or the JSON) alone.
progress = cli_console(stderr=True)

OnlyOpt = Annotated[
    Only,
    typer.Option("--only", help="Run only the test commands, or only the load test.", case_sensitive=False),
]


def _announce(kind: str, name: str, what: str) -> None:
    label = "load test" if kind == "load_test" else f"test {name}"
    progress.print(f"running {label}: {escape(what)}")


def _failing_lines(result: CheckResult) -> list[str]:
    """The failing cases of a test run, or the failed thresholds of a load test, one per line."""
    lines: list[str] = []
    junit: dict[str, Any] | None = result.evidence.get("junit")
    for case in (junit or {}).get("failing", []):
        lines.append(f"  {result.name}: {case['case']}: {case['message']}")
    for threshold in result.evidence.get("threshold_results", []):
        if not threshold["passed"]:
            lines.append(f"  load test: {threshold['text']}")
    return lines


def check(
    release_id: Annotated[str, typer.Argument(help="Release id (see `shiprail release list`).", show_default=False)],
    only: OnlyOpt = Only.ALL,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the release's stage checks (tests, load test) and record them for the Stage gates.

    Exits 0 when every check ran and passed, 1 when any failed (or the release is not in staging).
    """
    project = open_project()
    svc = releases(db, project)
    results = run_stage_checks(
        svc,
        release_id,
        root=project.root,
        actor=actor(who),
        only=only,
        on_start=None if as_json else _announce,
    )
    ok = all(r.passed for r in results)
    if as_json:
        emit_json({"ok": ok, "release": release_id, "checks": [r.to_json() for r in results]})
    elif not results:
        console.print(f"release {release_id} has no stage checks in its plan; nothing to run")
    else:
        table = Table("check", "name", "result", "summary")
        for r in results:
            mark = "[green]pass[/green]" if r.passed else "[red]fail[/red]"
            table.add_row(r.kind, r.name, mark, escape(r.summary))
        console.print(table)
        for r in results:
            for line in _failing_lines(r):
                console.print(escape(line))
        if ok:
            console.print(f"every check passed; recorded for the Stage gates of `shiprail release start {release_id}`")
        else:
            failed = ", ".join(r.name for r in results if not r.passed)
            console.print(
                f"[red]failed[/red]: {escape(failed)}; fix and run `shiprail release check {release_id}` again"
            )
    if not ok:
        raise typer.Exit(1)
