"""``shiprail plan``: validate, show and describe release plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shiprail.cli.output import JsonOpt, console, emit_json, problems_json
from shiprail.durations import format_duration
from shiprail.errors import BadInput, PlanInvalid, Problem
from shiprail.project import CheckedPlan, check_plan_file
from shiprail.schema.plan import ReleasePlan
from shiprail.schema.policy import Policy
from shiprail.schema.service import Service
from shiprail.schema.source import display_name

app = typer.Typer(help="Validate and inspect release plans.", no_args_is_help=True)

SCHEMAS: dict[str, type[ReleasePlan] | type[Policy] | type[Service]] = {
    "plan": ReleasePlan,
    "policy": Policy,
    "service": Service,
}


def summary(checked: CheckedPlan) -> str:
    """One line describing a valid plan."""
    r = checked.resolved
    steps = " → ".join(f"{s.weight:g}%" + (f" {format_duration(s.bake)}" if s.bake else "") for s in r.steps)
    return (
        f"{checked.file}: ok — {r.service} {r.baseline} → {r.version}, {r.risk} risk ({r.risk_reason}); "
        f"{r.approvals_required} approval(s); rollout {steps}; {len(r.contract.triggers)} triggers"
    )


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Release plan files.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Check release plans against the policy and their services; exit 2 on any problem."""
    results: list[dict[str, object]] = []
    problems: list[Problem] = []
    for path in files:
        try:
            checked = check_plan_file(path)
        except PlanInvalid as exc:
            # Each file names a broken shiprail.yaml again: say it once.
            problems.extend(p for p in exc.problems if p not in problems)
            results.append({"file": display_name(path), "ok": False, "problems": problems_json(exc.problems)})
            continue
        results.append(
            {"file": checked.file, "ok": True, "risk": checked.resolved.risk, "plan_hash": checked.resolved.plan_hash}
        )
        if not as_json:
            console.print(summary(checked))
    if as_json:
        emit_json({"ok": not problems, "files": results})
        if problems:
            raise typer.Exit(2)
        return
    if problems:
        raise PlanInvalid(problems)


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
        what = t.metric or t.signal
        comparison = next(c for c in ("above", "below", "above_baseline", "regression") if getattr(t, c) is not None)
        value = getattr(t, comparison)
        value_text = f"alpha {value.alpha}" if comparison == "regression" else f"{value:g}"
        window = f" over {format_duration(t.window)}" if t.window else ""
        console.print(f"  trigger {t.name or what}: {what} {comparison} {value_text}{window}")
    console.print(f"  contract hash {r.contract_hash[:16]}…, plan hash {r.plan_hash[:16]}…")
