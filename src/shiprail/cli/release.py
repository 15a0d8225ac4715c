"""``shiprail release``: create releases and move them through their gates."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from shiprail.cli.context import actor, releases, seconds_flag
from shiprail.cli.group import ShiprailGroup
from shiprail.cli.output import ActorOpt, DbOpt, JsonOpt, console, emit_json, float_flag
from shiprail.cli.watch import awaiting_promotion, held_by_person, held_for_on_call, rollout_lines, wait
from shiprail.describe import utc
from shiprail.domain import rules
from shiprail.domain.engine import ReleaseState, parse_state
from shiprail.domain.states import DRIVEN, ON_THE_ROUTER, TERMINAL, Action, Gate, Status
from shiprail.durations import format_duration
from shiprail.errors import BadInput, GateFailed, IllegalTransition, NotFound
from shiprail.export.history import override_gates
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases, ReleaseView, ended_next
from shiprail.schema.policy import APPROVE_ROLES, QA_ROLE

app = typer.Typer(help="Create releases and move them through their gates.", no_args_is_help=True, cls=ShiprailGroup)

IdArg = Annotated[str, typer.Argument(help="Release id (see `shiprail release list`).", show_default=False)]
# The commands that also take a release's plan file (its latest release that has not ended).
IdOrPlanArg = Annotated[
    str,
    typer.Argument(
        help="Release id (see `shiprail release list`), or its plan file.", metavar="RELEASE_ID", show_default=False
    ),
]
GATES_SHOWN = 12
"""The gate evaluations `release show` lists, the latest."""


def _print_view(view: ReleaseView) -> None:
    r = view.resolved
    console.print(
        f"[bold]{escape(view.id)}[/bold]  {escape(view.service)} {escape(view.baseline)} → {escape(view.version)}  "
        f"[bold]{view.state}[/bold]  ({view.risk} risk, owner {escape(view.owner)})"
    )
    # What people wrote (summary, reasons, QA items, post-mortems) is text, never Rich markup: a
    # "[/link]" in an override reason would stop `release show` with a MarkupError.
    console.print(f"  {escape(r.summary)}")
    steps = " → ".join(
        (f"[bold]{s.weight:g}%[/bold]" if view.step == i else f"{s.weight:g}%")
        + (f" {format_duration(s.bake)}" if s.bake else "")
        + s.shown_promote
        for i, s in enumerate(r.steps)
    )
    console.print(f"  rollout: {steps}")
    frozen = f"frozen {utc(view.frozen_at)}" if view.frozen_at else "not frozen yet"
    console.print(f"  contract {view.contract_hash[:12]}… ({frozen}); plan {escape(view.plan_file)}")
    current = [
        a["by"]
        for a in view.approvals
        if a["current"] and not a.get("lapsed") and not a.get("by_owner") and not a.get("by_author")
    ]
    # Approvals by someone the plan has named its owner since: the gate never counts them.
    owned = [a["by"] for a in view.approvals if a["current"] and a.get("by_owner")]
    # Approvals of people who may no longer approve under shiprail.yaml as it is now.
    gone = [a["by"] for a in view.approvals if a["current"] and a.get("lapsed") and not a.get("by_owner")]
    # Approvals by someone who created the release or changed what it runs since (an edit put back).
    wrote = [a["by"] for a in view.approvals if a["current"] and a.get("by_author") and a["by"] not in gone]
    # Approvals of what the release ran before (another plan, or the same plan resolved otherwise),
    # by people not named already: each person once, for what their approval of the release as it
    # runs is (one who approved it before and again since is named for the approval that matters).
    named = set(current) | set(owned) | set(gone) | set(wrote)
    earlier = [a["by"] for a in view.approvals if not a["current"] and a["by"] not in named]
    planned = view.status == Status.PLANNED.value
    console.print(
        f"  approvals: {len(current)} of {r.approvals_required}"
        + (f" ({escape(', '.join(current))})" if current else "")
        + (
            f"; not counting, of the release as it was before: {escape(', '.join(dict.fromkeys(earlier)))}"
            if earlier and planned
            else ""
        )
        + (f"; not counting, by someone who owned the release: {escape(', '.join(owned))}" if owned else "")
        + (
            f"; not counting, by someone who created or changed the release: {escape(', '.join(wrote))}"
            if wrote
            else ""
        )
        + (
            f"; not counting, no longer holding the role {' or '.join(APPROVE_ROLES)} in shiprail.yaml: "
            f"{escape(', '.join(gone))}"
            if gone
            else ""
        )
    )
    # Who answers for Verify: the plan's person until a handover (`release handover`).
    console.print(f"  on call for Verify: {escape(view.on_call or r.on_call)}")
    for ho in view.handovers:
        console.print(
            f"    handed over {utc(ho['at'])}: {escape(ho['from'])} → {escape(ho['to'])} by {escape(ho['by'])}"
            + (f": {escape(ho['reason'])}" if ho["reason"] else "")
        )
    if r.qa_checklist:
        signed = {s["item"]: s["by"] for s in view.signoffs}
        # Signed off by an owner (present or former), or by someone who no longer holds the qa role:
        # the qa gate does not count it at Start.
        why = {s["item"]: "owns the release" for s in view.signoffs if s.get("by_owner")}
        for x in view.signoffs:
            if x.get("lapsed") and x["item"] not in why:
                why[x["item"]] = f"no longer holds the role {QA_ROLE} in shiprail.yaml"
        for item in r.qa_checklist:
            mark = f"[green]✓ {escape(signed[item])}[/green]" if item in signed else "[yellow]·[/yellow]"
            note = ""
            if item in why:
                mark = "[yellow]·[/yellow]"
                note = f" (signed off by {escape(signed[item])}, who {why[item]})"
            console.print(f"  QA {mark} {escape(item)}{note}")
    if view.gates:
        shown = view.gates[-GATES_SHOWN:]
        title = "gate evaluations"
        if len(shown) < len(view.gates):
            # Cut short, say so: a reader must not take the earlier gates for never evaluated.
            title += f" (the last {len(shown)} of {len(view.gates)}; --json or `shiprail release export` has all)"
        # The time whole (never cut to "2026-11-28T04:47:…"): the reason column wraps instead.
        table = Table(
            Column("at", no_wrap=True),
            Column("action", overflow="fold"),
            Column("gate", overflow="fold"),
            "verdict",
            "reason",
            title=title,
            title_justify="left",
        )
        for g in shown:
            color = {"pass": "green", "fail": "red", "overridden": "yellow"}[g["verdict"]]
            # A refusal an override would name: with its reference (`--gate freeze@1f2e3d4c`).
            ref = f" [dim]({g['refusal']})[/dim]" if g["verdict"] == "fail" and "refusal" in g else ""
            table.add_row(
                utc(g["at"]), g["action"], g["gate"], f"[{color}]{g['verdict']}[/{color}]", escape(g["reason"]) + ref
            )
        console.print(table)
    for o in view.overrides:
        console.print(
            f"  [yellow]override[/yellow] #{o['id']} by {escape(o['by'])} of "
            f"{escape(override_gates(o['gates'], o.get('refused_by')))}: "
            f"{escape(o['reason'])}"
        )
    for p in view.postmortems:
        console.print(
            f"  post-mortem #{p['id']}: {p['status']}" + (f" — {escape(p['summary'])}" if p["summary"] else "")
        )
    for line in rollout_lines(view):
        console.print(line)
    if view.controller is not None and Status(view.status) in DRIVEN:
        until = datetime.fromisoformat(view.controller["lease_until"])
        lapsed = ", lapsed: another controller takes it over" if view.lease_lapsed else ""
        console.print(f"  controller: {escape(view.controller['holder'])} (lease until {until:%H:%M:%S}Z{lapsed})")


def _show(view: ReleaseView, as_json: bool) -> None:
    if as_json:
        emit_json(view.to_json())
    else:
        _print_view(view)


@app.command()
def create(
    file: Annotated[Path, typer.Argument(help="The release plan.", show_default=False)],
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a release of a plan; it starts planned, waiting for approvals."""
    project = open_project(file.parent)
    checked = check_plan_file(file, project)
    # Who acts is checked before the store is opened: `create` may start a new store, and a
    # refusal must leave none behind (a --db typo would otherwise become a second, empty store).
    name = actor(who)
    rules.require_person(name, project.policy.people)
    view = releases(db, project, create="any").create(checked, name)
    if as_json:
        emit_json(view.to_json())
    else:
        console.print(
            f"created release [bold]{view.id}[/bold] ({view.risk} risk): "
            f"needs {view.resolved.approvals_required} approval(s) before `shiprail release stage {view.id}`"
        )


@app.command()
def update(
    release_id: IdArg,
    file: Annotated[Path, typer.Argument(help="The edited plan.", show_default=False)],
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the plan of a release that has not frozen its contract yet."""
    project = open_project(file.parent)
    checked = check_plan_file(file, project)
    done = releases(db, project).update_plan(release_id, checked, actor(who))
    _show(done.view, as_json)
    if as_json or not done.changed:
        return  # resolved exactly as before: its approvals still count
    if done.plan_changed:
        why = "the plan changed"
    else:
        # The same plan file: the service file or shiprail.yaml changed what the release runs.
        why = (
            f"the plan file is the same, but it resolves otherwise with services/{escape(done.view.service)}.yaml "
            f"and shiprail.yaml as they are now ({', '.join(done.changed)} changed)"
        )
    dropped, back = done.no_longer_counting, done.counting_again
    console.print(
        # Approvals given when it last ran as it does now (an edit reverted) are not asked again.
        f"{'the release changed' if back else 'approvals are asked again'}: {why}"
        + (f"; the approval(s) of {escape(', '.join(dropped))} no longer count" if dropped else "")
        + (
            f"; the approval(s) of {escape(', '.join(back))}, given when it last resolved as it does now, count again"
            if back
            else ""
        )
    )


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="Only releases in this state.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List releases, newest first."""
    if status is not None and status not in {s.value for s in Status}:
        raise BadInput(f"--status must be one of {', '.join(s.value for s in Status)}, got {status!r}")
    views = releases(db).list(status)
    if as_json:
        emit_json([v.to_json(full=False) for v in views])
        return
    # The id is what the next command takes and the state what it may do: never cut short; on a
    # narrow terminal the other columns wrap instead.
    id_width = max((len(v.id) for v in views), default=2)
    state_width = max((len(v.state) for v in views), default=5)
    table = Table(
        Column("id", no_wrap=True, min_width=id_width),
        Column("service", overflow="fold"),
        Column("version", overflow="fold"),
        "risk",
        Column("state", no_wrap=True, min_width=state_width),
        Column("owner", overflow="fold"),
        Column("created", overflow="fold"),
    )
    for v in views:
        table.add_row(v.id, v.service, v.version, v.risk, v.state, v.owner, f"{v.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command()
def show(release_id: IdArg, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Show a release: state, gates, approvals, overrides, post-mortems."""
    _show(releases(db).get(release_id), as_json)


RevokeOpt = Annotated[
    bool, typer.Option("--revoke", help="Withdraw your own instead, before its gate is judged; audited.")
]
RevokeReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", help="With --revoke: why, for the audit trail.", show_default=False),
]


def _give_or_revoke(
    revoke: bool,
    reason: str | None,
    who: str | None,
    give: Callable[[str], ReleaseView],
    withdraw: Callable[[str, str | None], ReleaseView],
    what: str,
    as_json: bool,
) -> None:
    """Give an approval or sign-off as ``who`` (``give``), or with ``revoke`` withdraw it (``withdraw``,
    with ``reason``; ``what``: "approval of", "sign-off of QA item 1 of"); print the release."""
    if reason is not None and not revoke:
        raise BadInput("--reason goes with --revoke (why you withdraw it); leave it out to give one")
    name = actor(who)
    if not revoke:
        _show(give(name), as_json)
        return
    view = withdraw(name, reason)
    if not as_json:
        console.print(f"revoked: {escape(name)}'s {escape(what)} {view.id} no longer counts")
    _show(view, as_json)


@app.command()
def approve(
    release_id: IdArg,
    revoke: RevokeOpt = False,
    reason: RevokeReasonOpt = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a planned release (not your own), or with --revoke withdraw your approval while it is planned."""
    svc = releases(db)
    _give_or_revoke(
        revoke,
        reason,
        who,
        lambda name: svc.approve(release_id, name),
        lambda name, why: svc.revoke_approval(release_id, name, why),
        "approval of",
        as_json,
    )


@app.command()
def signoff(
    release_id: IdArg,
    item: Annotated[str, typer.Argument(help="The QA checklist item: its number or its text.", show_default=False)],
    revoke: RevokeOpt = False,
    reason: RevokeReasonOpt = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign off a QA checklist item (role qa, not the owner), or with --revoke withdraw your sign-off of it."""
    svc = releases(db)
    _give_or_revoke(
        revoke,
        reason,
        who,
        lambda name: svc.signoff(release_id, item, name),
        lambda name, why: svc.revoke_signoff(release_id, item, name, why),
        f"sign-off of QA item {item} of",
        as_json,
    )


@app.command()
def stage(release_id: IdArg, who: ActorOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Enter Stage: the approvals gate must pass; the rollback contract is frozen."""
    svc = releases(db)
    svc.act(release_id, Action.STAGE, actor(who))
    _show(svc.get(release_id), as_json)


@app.command()
def override(
    release_id: IdArg,
    reason: Annotated[
        str, typer.Option(help="Why the failed gate is passed anyway (goes into the audit trail).", show_default=False)
    ],
    gate: Annotated[
        list[str] | None,
        typer.Option(
            help="Gate to pass, or the refusal of it a refusal names (e.g. freeze@1f2e3d4c): only that refusal is "
            "passed (default: every failed gate)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="The state you saw refused, as `release show` prints it (e.g. 'rolling_out (step 2)'); "
            "refused if the release has moved on since.",
            show_default=False,
        ),
    ] = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pass a failed gate anyway (executive, not the owner); opens a post-mortem."""
    seen = None
    if at is not None:
        seen = parse_state(at)
        if seen is None:
            raise BadInput(
                f"--at {at!r} is not a state of a release; give the state `shiprail release show` printed, e.g. "
                "planned, staging, 'rolling_out (step 2)' or verifying"
            )
    svc = releases(db)
    svc.override(release_id, actor(who), reason, gate or [], seen=seen)
    view = svc.get(release_id)
    if as_json:
        emit_json(view.to_json())
        return
    pm = view.postmortems[-1]
    console.print(
        f"[yellow]overridden[/yellow]: {view.id} is now {view.state}; post-mortem #{pm['id']} is open "
        f"(close it with `shiprail release postmortem {view.id} --done --summary ...`)"
    )
    if Status(view.status) in ON_THE_ROUTER:
        _say_if_undriven(svc, view.id, Action.RESUME)


@app.command()
def postmortem(
    release_id: IdArg,
    done: Annotated[bool, typer.Option("--done", help="Close the open post-mortem.")] = False,
    summary: Annotated[str | None, typer.Option(help="What was learned (with --done).")] = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a release's post-mortems, or close the open one with --done --summary."""
    if summary is not None and not done:
        # Showing would drop the summary on the floor: what was learned must not vanish silently.
        raise BadInput("--summary goes with --done (closing the open post-mortem); add --done, or drop --summary")
    svc = releases(db)
    if done:
        if not summary:
            raise BadInput("--done needs --summary saying what was learned")
        closed = svc.close_postmortem(release_id, actor(who), summary)
        if as_json:
            emit_json(closed)
        else:
            console.print(f"post-mortem #{closed['id']} on {release_id} is done")
        return
    pms = svc.get(release_id).postmortems
    if as_json:
        emit_json(pms)
        return
    if not pms:
        console.print(f"{release_id} has no post-mortems")
    for p in pms:
        console.print(
            f"#{p['id']} {p['status']} opened {utc(p['opened_at'])}"
            + (f": {escape(p['summary'])}" if p["summary"] else "")
        )


ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why (written to the audit trail).", show_default=False)
]


def _id_or_plan(svc: Releases, target: str) -> str:
    """A release id, or the latest live release of the plan file ``target`` names."""
    path = Path(target)
    if path.suffix not in (".yaml", ".yml"):
        return target
    if path.is_file():
        return svc.for_plan_file(path)
    try:
        svc.get(target)
    except NotFound:
        # A plan file that is not there (a typo, not written yet): say so, not "no release 'x.yaml'".
        what = f"{target} is a directory" if path.is_dir() else f"{target}: no such plan file"
        raise BadInput(
            f"{what}, and no release has that id; give a release id "
            "(`shiprail release list` shows them) or the plan file of one"
        ) from None
    return target


@app.command()
def start(
    target: Annotated[
        str, typer.Argument(help="Release id, or its plan file.", metavar="RELEASE_ID|PLAN_FILE", show_default=False)
    ],
    wait_: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Drive the rollout here (unless a controller already does) and follow it to the end, or to a step "
            "that waits for a person to promote it (promote: manual).",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="With --wait: stop following after this many seconds (exit 1).",
            parser=float_flag,
            metavar="FLOAT",
        ),
    ] = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the staged rollout (the stage gates must pass). With --wait: exit 0 complete or held at a step a
    person promotes (promote: manual), 1 otherwise."""
    if timeout is not None:
        # Checked before anything changes: the release must not start on a flag that then fails.
        if not wait_:
            raise BadInput("--timeout says how long --wait follows the release; give --wait too, or drop --timeout")
        seconds_flag("--timeout", timeout, zero=True)
    svc = releases(db)
    rid = _id_or_plan(svc, target)
    before = svc.get(rid)
    if before.status == Status.STAGING.value:
        svc.act(rid, Action.START, actor(who))
    elif not wait_ or before.status in (Status.PLANNED.value, Status.ROLLED_BACK.value):
        # --wait follows a release already started; a planned one has nothing to follow, nor has one
        # rolled back before (exit 1 with nothing said, and a CI job re-run learnt nothing).
        raise IllegalTransition(
            f"release {rid} is {before.state}; only a release in staging can start; {_start_instead(before)}"
        )
    if not wait_:
        view = svc.get(rid)
        if as_json:
            emit_json(view.to_json())
        else:
            console.print(
                f"started {rid}: the controller now takes it to {view.resolved.steps[0].weight:g}% "
                f"(`shiprail controller`, or `shiprail release start {rid} --wait`)"
            )
        return
    try:
        view = wait(svc, rid, to_stderr=as_json, timeout_s=timeout)
    except KeyboardInterrupt:
        # Ctrl-C: this process was what drove the release (unless a controller holds it), so say
        # who drives it now rather than leave a canary with its contract unwatched without a word.
        _say_stopped_following(svc, rid)
        raise typer.Exit(130) from None
    if as_json:
        emit_json(view.to_json())
    else:
        _print_view(view)
    if awaiting_promotion(view):
        # The plan's own checkpoint, reached: nothing failed, and nothing moves until a person
        # promotes it (as a pipeline's manual job would), so the job's part is done (exit 0).
        step = view.step or 0
        sys.stderr.write(
            f"stopped following {rid}: it is held at step {step + 1} ({view.resolved.steps[step].weight:g}%) "
            f"awaiting promotion (promote: manual): promote it with `shiprail release promote {rid}`; until then "
            "its contract is analysed (and a breach rolls it back), and once promoted it moves on, only while a "
            f"`shiprail controller` runs (or `shiprail release start {rid} --wait` again)\n"
        )
        return
    if view.status != Status.COMPLETE.value:
        if held_by_person(view):
            sys.stderr.write(
                f"error: stopped following {rid}: it was paused by hand and waits for `shiprail release resume {rid}`; "
                "its contract is analysed (and a breach rolls it back) only while a `shiprail controller` runs\n"
            )
        elif held_for_on_call(view):
            # Not the plan's checkpoint: the release did not get into Verify (exit 1), and only a
            # person can let it (a handover, or shiprail.yaml fixed), so waiting on would hang.
            reason = str((view.held or {}).get("reason", "the person on call may not answer for Verify"))
            sys.stderr.write(
                f"error: stopped following {rid}: it is held at {view.weight or 0:g}% before Verify: {reason}; "
                "until then its contract is analysed (and a breach rolls it back), and once it may enter Verify it "
                f"does, only while a `shiprail controller` runs (or `shiprail release start {rid} --wait` again)\n"
            )
        elif view.status != Status.ROLLED_BACK.value:
            sys.stderr.write(
                f"error: stopped following {rid} after --timeout {timeout or 0:g}s: it is {view.state}; a running "
                "`shiprail controller` carries it on\n"
            )
        raise typer.Exit(1)


def _start_instead(view: ReleaseView) -> str:
    """What to do with a release ``release start`` refuses, for its state."""
    status = Status(view.status)
    if status in TERMINAL:
        return ended_next(view.status, view.plan_file)
    if status == Status.PLANNED:
        return f"stage it first: `shiprail release stage {view.id}` (its approvals gate must pass)"
    if status == Status.PAUSED and parse_state(view.state) == ReleaseState(status, paused_from=Status.STAGING):
        # Paused before its rollout began: resume brings it back to staging, where start begins it.
        return f"it is paused in Stage: `shiprail release resume {view.id}`, then `shiprail release start {view.id}`"
    if status == Status.PAUSED:
        return f"it started before and is paused: `shiprail release resume {view.id}` carries on"
    return (
        f"it started before: `shiprail release start {view.id} --wait` follows it, "
        f"`shiprail release show {view.id}` shows it"
    )


def _say_stopped_following(svc: Releases, release_id: str) -> None:
    """After Ctrl-C stopped ``release start --wait``: where the release stands, and what drives it now."""
    view = svc.get(release_id)
    said = f"stopped following {release_id} (interrupted): it is {view.state}"
    if view.status in (Status.COMPLETE.value, Status.ROLLED_BACK.value):
        sys.stderr.write(f"{said}\n")
    elif _controller_running(svc, release_id):
        sys.stderr.write(f"{said}; the running `shiprail controller` carries it on\n")
    else:
        sys.stderr.write(
            f"{said}; no controller is running, so nothing analyses its contract or moves its router until one "
            f"does: run `shiprail controller`, or `shiprail release start {release_id} --wait` again\n"
        )


# The commands that move a rolling release by hand, and what each one says of itself.
LIFECYCLE: dict[Action, str] = {
    Action.PROMOTE: "Move to the next step now: its bake and the latest analysis must pass (else: `release override`).",
    Action.PAUSE: "Hold the release at its weight; the contract stays armed, the bake stops.",
    Action.RESUME: "Carry on from where the release paused.",
    Action.ROLLBACK: (
        "Put all traffic back on the baseline (the owner, a releaser, on-call or an executive); the controller "
        "confirms the revert."
    ),
}


# What waits for a controller after each of these, said when none runs (only a controller moves the router).
UNDRIVEN: dict[Action, str] = {
    Action.PROMOTE: "the release moves on only while one runs",
    Action.RESUME: "the release moves on only while one runs",
    Action.ROLLBACK: "the canary keeps its traffic until one runs and the router confirms weight 0",
}
# A rollback from Stage (or paused in it): no traffic ever moved, so no canary traffic to keep.
UNDRIVEN_FROM_STAGE = "the release stays rolling_back until one runs and the router confirms weight 0"


def _say_if_undriven(svc: Releases, release_id: str, action: Action, from_stage: bool = False) -> None:
    """After ``action``, say what waits for a controller when none would drive the release."""
    if not _controller_running(svc, release_id):
        how = "(`shiprail controller`, or `shiprail controller --once`)"
        what = UNDRIVEN_FROM_STAGE if action is Action.ROLLBACK and from_stage else UNDRIVEN[action]
        console.print(f"no controller is running: {what} {how}")


def _controller_running(svc: Releases, release_id: str) -> bool:
    """Whether a controller that drives ``release_id`` is recorded as running now: one that drives
    whatever is active (it records its presence), or one holding this release's lease. A
    ``release start --wait`` or ``controller --release`` of another release does not drive it; nor
    does one of this host whose process is gone (killed: its row lapses a lease period later)."""
    from sqlalchemy import select

    from shiprail.controller.leases import now_in, process_gone
    from shiprail.store.models import ControllerPresence, Lease

    with svc.store.transaction() as s:
        now = now_in(s, svc.clock)  # the clock the controllers' leases are timed by
        present = s.execute(select(ControllerPresence.holder).where(ControllerPresence.expires_at > now)).scalars()
        held = s.execute(select(Lease.holder).where(Lease.release_id == release_id, Lease.expires_at > now)).scalars()
        return any(not process_gone(holder) for holder in [*present, *held])


def _lifecycle_command(action: Action, doc: str) -> None:
    def command(
        release_id: IdOrPlanArg,
        reason: ReasonOpt = None,
        who: ActorOpt = None,
        db: DbOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        svc = releases(db)
        rid = _id_or_plan(svc, release_id)
        before = parse_state(svc.get(rid).state) if action is Action.ROLLBACK else None
        from_stage = before is not None and Status.STAGING in (before.status, before.paused_from)
        try:
            svc.act(rid, action, actor(who), reason=reason)
        except GateFailed as refused:
            # Only a controller analyses a release and bakes its step: without one, "fix it and try
            # again" would be tried again for ever.
            waits = {Gate.BAKE.value, Gate.ANALYSIS.value} & set(refused.gates)
            if not waits or _controller_running(svc, rid):
                raise
            raise GateFailed(
                f"{refused.message}; no controller is running, so nothing analyses the release or bakes its step "
                "until one does (`shiprail controller`, or `shiprail controller --once`)",
                refused.gates,
            ) from None
        view = svc.get(rid)
        if as_json:
            emit_json(view.to_json())
        else:
            console.print(f"{view.id} is now {view.state}")
            # A release resumed into staging waits for `release start`, not for a controller.
            if action in UNDRIVEN and Status(view.status) in DRIVEN:
                _say_if_undriven(svc, view.id, action, from_stage)

    command.__doc__ = doc
    app.command(action.value)(command)


for _action, _doc in LIFECYCLE.items():
    _lifecycle_command(_action, _doc)


@app.command()
def handover(
    release_id: IdArg,
    to: Annotated[
        str, typer.Option("--to", help="Who takes over on call (role oncall in shiprail.yaml).", show_default=False)
    ],
    reason: ReasonOpt = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand on-call duty for a release to someone else (the person on call, the owner or an executive)."""
    view = releases(db).handover(release_id, to, actor(who), reason)
    if as_json:
        emit_json(view.to_json())
        return
    last = view.handovers[-1]
    console.print(f"{escape(view.id)}: {escape(last['to'])} is now on call (was {escape(last['from'])})")
