"""``shiprail plan``: validate, show and describe release plans."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from shiprail import defaults
from shiprail.cli.context import open_store
from shiprail.cli.group import ShiprailGroup
from shiprail.cli.output import DbOpt, JsonOpt, console, emit_json, problems_json
from shiprail.clock import WallClock
from shiprail.domain.contract import Sample, trigger_name
from shiprail.domain.freezes import rollout_warning
from shiprail.durations import format_duration
from shiprail.errors import BadInput, PlanInvalid, Problem, ProviderFailed
from shiprail.export.history import trigger_text
from shiprail.project import CheckedPlan, check_plan_file, find_root, open_project
from shiprail.providers import PushProviderConfig, build_provider
from shiprail.providers.base import Provider
from shiprail.schema.plan import ReleasePlan, RollbackContract
from shiprail.schema.policy import Policy
from shiprail.schema.resolved import resolved_hash
from shiprail.schema.service import Metric, Service
from shiprail.schema.source import display_name
from shiprail.schema.validation import did_you_mean
from shiprail.store.db import Store, default_url

app = typer.Typer(help="Validate and inspect release plans.", no_args_is_help=True, cls=ShiprailGroup)

SCHEMAS: dict[str, type[ReleasePlan] | type[Policy] | type[Service]] = {
    "plan": ReleasePlan,
    "policy": Policy,
    "service": Service,
}


def summary(checked: CheckedPlan) -> str:
    """One line describing a valid plan."""
    r = checked.resolved
    steps = " → ".join(
        f"{s.weight:g}%" + (f" {format_duration(s.bake)}" if s.bake else "") + s.shown_promote for s in r.steps
    )
    return (
        f"{checked.file}: ok — {r.service} {r.baseline} → {r.version}, {r.risk} risk ({r.risk_reason}); "
        f"{r.approvals_required} approval(s); rollout {steps}; {triggers_count(r.contract)}"
    )


def triggers_count(contract: RollbackContract) -> str:
    """``3 triggers``, and how many of them are dry runs when any are: ``3 triggers, 1 dry run``."""
    dry, count = len(contract.dry_runs()), len(contract.triggers)
    return f"{count} trigger{'' if count == 1 else 's'}" + (f", {dry} dry run{'' if dry == 1 else 's'}" if dry else "")


def live_readings(checked: CheckedPlan, db: str | None) -> list[dict[str, Any]]:
    """What each metric trigger of a valid plan reads now for the baseline, from the service's provider."""
    from shiprail.controller.analysis import metrics_now  # the controller's parts: only for --live

    r = checked.resolved
    pushed = isinstance(r.target.provider, PushProviderConfig)
    # The push provider reads what apps pushed into the store: the project's, or --db.
    store = _pushed_store(db, checked.path.parent) if pushed else None
    provider: Provider = (
        _NothingPushed()
        if pushed and store is None
        else build_provider(
            r.target.provider, clock=WallClock(), stable=r.baseline, canary=r.version, store=store, service=r.service
        )
    )
    try:
        return metrics_now(
            r.contract,
            r.target,
            provider,
            version=r.version,
            baseline=r.baseline,
            interval_s=r.analysis_interval,
            sides=("baseline",),
        )
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()
        if store is not None:
            store.close()


def _pushed_store(db: str | None, start: Path) -> Store | None:
    """The store apps push to; None when it is the project's own SQLite file and none exists yet.

    A new project has no store until ``shiprail serve`` (which apps push to) or a release command
    creates it: nothing can have been pushed, so every trigger reads no data. A store named with
    ``--db`` or the environment that does not exist stays an error: that is a typo, not a new project.
    """
    if db is None and not os.environ.get(defaults.DATABASE_URL_ENV):
        root = find_root(start)
        if not Path(default_url(root).removeprefix("sqlite:///")).is_file():
            return None
    return open_store(db, start, create="never")


class _NothingPushed:
    """The push provider of a project without a store yet: no app has pushed anything."""

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        return Sample(None)


def first_step_shortfall(checked: CheckedPlan, row: dict[str, Any]) -> str | None:
    """Why a trigger would stay inconclusive at the rollout's first step, at the traffic read now; None if it would not.

    The baseline serves all traffic now: at a first step of w %, the canary gets about w % of the
    samples the window holds. Below the trigger's ``min_samples`` every analysis there is
    inconclusive, and the release pauses for missing data (the first-canary trap: the init plan's
    200 samples over 5 min at 1 % need some 67 requests a second).
    """
    r = checked.resolved
    read = row["baseline"]
    trigger = next((t for t in r.contract.triggers if trigger_name(t) == row["trigger"]), None)
    # A dry run never pauses the release for missing data: it would only be reported inconclusive.
    if trigger is None or trigger.dry_run or trigger.regression is not None or not trigger.min_samples:
        return None  # a regression test's min_samples counts since the rollout began, not per window
    if read["error"] or read["samples"] is None:
        return None
    first = r.steps[0].weight
    expected = read["samples"] * first / 100
    if expected >= trigger.min_samples:
        return None
    return (
        f"at the first step ({first:g}%) the canary would get about {expected:,.0f} of the {trigger.min_samples} "
        f"samples trigger {row['trigger']} needs over {format_duration(row['window_s'])} at today's traffic, so it "
        "would stay inconclusive and the release pause for missing data; lower min_samples or lengthen the window"
    )


def freeze_warnings(checked: CheckedPlan) -> list[str]:
    """The deployment freeze a rollout of the plan started now would run into, at its shortest, and
    every freeze naming a service that has no file in services/ (a typo: it would never hold one)."""
    r = checked.resolved
    project = open_project(checked.path.parent)
    known = project.known_services()
    out = [
        f"{defaults.POLICY_FILE}: freeze {f.name!r} names the service {name!r}, which has no "
        f"{defaults.SERVICES_DIR}/{name}.yaml, so it holds no release of it{did_you_mean(name, known)}"
        for f in project.policy.freezes
        for name in f.services
        if name not in known
    ]
    rollout = rollout_warning(
        project.policy.freeze_windows(), r.service, [s.bake or 0 for s in r.steps], WallClock().now()
    )
    return ([rollout] if rollout is not None else []) + out


def _live_line(row: dict[str, Any], baseline: str, kind: str) -> str:
    """One reading as a line under the plan's summary."""
    read = row["baseline"]
    where = f"trigger {row['trigger']}: {row['metric']} for {baseline} over {format_duration(row['window_s'])}"
    if read["error"]:
        return f"  [red]live: {escape(where)} failed: {escape(str(read['error']))}[/red]"
    if read["value"] is None:
        why = {
            "scrape": "the scrape provider counts from its first read",
            "push": f"no app pushed {baseline}'s metrics over that window",
        }.get(kind, f"if {baseline} serves traffic, the query matches nothing")
        return f"  [yellow]live: {escape(where)}: no data ({escape(why)})[/yellow]"
    samples = "" if read["samples"] is None else f" ({read['samples']:,.0f} samples)"
    return f"  live: {escape(where)}: {read['value']:.6g}{samples}"


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Release plan files.", show_default=False)],
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also ask each plan's metric provider, once, what every metric trigger reads now for the "
            "baseline version; exit 1 when a query fails (a query the provider refuses, an unreachable provider).",
        ),
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check release plans against the policy and their services; exit 2 on any problem."""
    results: list[dict[str, object]] = []
    problems: list[Problem] = []
    failed_queries = 0
    for path in files:
        try:
            checked = check_plan_file(path)
        except PlanInvalid as exc:
            # Each file names a broken shiprail.yaml again: say it once.
            problems.extend(p for p in exc.problems if p not in problems)
            results.append({"file": display_name(path), "ok": False, "problems": problems_json(exc.problems)})
            continue
        result: dict[str, object] = {
            "file": checked.file,
            "ok": True,
            "risk": checked.resolved.risk,
            "plan_hash": checked.resolved.plan_hash,
        }
        results.append(result)
        if not as_json:
            console.print(summary(checked))
        warnings = freeze_warnings(checked)
        if warnings:
            result["warnings"] = warnings
            if not as_json:
                for warning in warnings:
                    console.print(f"  [yellow]warning: {escape(warning)}[/yellow]")
        if live:
            readings = live_readings(checked, db)
            failed_queries += sum(1 for row in readings if row["baseline"]["error"])
            result["live"] = readings
            for row in readings:
                short = first_step_shortfall(checked, row)
                if short:
                    row["warning"] = short
            if not as_json:
                for row in readings:
                    console.print(_live_line(row, checked.resolved.baseline, checked.resolved.target.provider.type))
                    if row.get("warning"):
                        console.print(f"  [yellow]warning: {escape(row['warning'])}[/yellow]")
    if as_json:
        emit_json({"ok": not problems and not failed_queries, "files": results})
        if problems:
            raise typer.Exit(2)
        if failed_queries:
            raise typer.Exit(1)
        return
    if problems:
        raise PlanInvalid(problems)
    if failed_queries:
        raise ProviderFailed(
            f"{failed_queries} metric {'query' if failed_queries == 1 else 'queries'} failed against the provider "
            "(above); fix what each names (the service file's query, the provider's address or its credentials) "
            "before the release starts"
        )


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="plan, policy or service.")] = "plan",
    as_json: JsonOpt = False,
) -> None:
    """Print the JSON Schema of a file kind."""
    model = SCHEMAS.get(kind)
    if model is None:
        raise BadInput(f"KIND must be one of {', '.join(SCHEMAS)}, got {kind!r}")
    emit_json(model.model_json_schema(mode="validation"))


@app.command()
def show(
    file: Annotated[Path, typer.Argument(help="A release plan file.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Show a plan as it resolves against policy and service: risk, gates, steps, contract."""
    checked = check_plan_file(file)
    r = checked.resolved
    if as_json:
        emit_json(json.loads(r.model_dump_json()))
        return
    console.print(summary(checked))
    console.print(
        f"  owner {r.owner}; on call during verify: {r.on_call}; verify window {format_duration(r.verify_window)}"
    )
    for t in r.contract.triggers:
        console.print(f"  trigger {trigger_text(t)}")
    # The release hash: what approvals of a release of this plan, resolved as now, approve.
    console.print(
        f"  contract hash {r.contract_hash[:16]}…, plan hash {r.plan_hash[:16]}…, "
        f"release hash {resolved_hash(r.model_dump_json())[:16]}…"
    )
