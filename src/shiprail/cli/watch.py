"""Following a release as it rolls out: the live view of ``release start --wait`` and ``release show``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from shiprail import defaults, describe
from shiprail.cli.output import cli_console, console, on_terminal
from shiprail.clock import Clock
from shiprail.describe import p_value, percent, short, utc
from shiprail.domain.states import TERMINAL, Gate, Status
from shiprail.durations import format_duration
from shiprail.errors import SchemaChanged, StoreError
from shiprail.export.history import span
from shiprail.releases import Releases, ReleaseView
from shiprail.schema.plan import DRY_RUN_SHOWN
from shiprail.store.db import store_error_text
from shiprail.store.holds import HELD_EVENT
from shiprail.store.rollouts import DRY_RUN_EVENT

# How often the watcher redraws when nothing is due sooner.
REFRESH_SECONDS = 0.5
# The longest the controller's closing (handing back its lease) may hold up the end of --wait.
CLOSE_SECONDS = 5.0

T = TypeVar("T")


class _Silent(Exception):
    """The store did not answer before the deadline."""


def _within(deadline: datetime | None, clock: Clock, call: Callable[[], T]) -> T:
    """``call()``, unless it is still waiting when ``deadline`` passes: then ``_Silent``.

    ``follow`` gives it its --timeout plus a grace: a controller pass that runs long (a slow router
    call) is waited for, as before; only a call that never ends is left.

    A store that takes the bytes and never answers (a stalled server, a hung pooler) is invisible
    to TCP keepalives and timeouts: without this, a database call would hold --wait past its
    --timeout for as long as the stall lasts. The call runs in a daemon thread that is left behind.
    """
    if deadline is None:
        return call()
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread as it was raised
            box.append((False, exc))

    worker = threading.Thread(target=run, name="shiprail-watch-call", daemon=True)
    worker.start()
    worker.join(max(0.0, (deadline - clock.now()).total_seconds()))
    if not box:
        raise _Silent
    ok, value = box[0]
    if ok:
        return cast(T, value)
    raise value


VERDICT_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": "dim"}


def rollout_lines(view: ReleaseView) -> list[RenderableType]:
    """Where the rollout stands: step, weight, bake left, the last analysis per trigger."""
    out: list[RenderableType] = []
    where = describe.position(view)
    if where is not None:
        out.append(Text(f"  {where}"))
    if view.router_trouble is not None:
        out.append(Text(f"  {describe.router_trouble(view.router_trouble)}", style="yellow"))
    if (held := describe.held(view)) is not None:
        out.append(Text(f"  {held}", style="yellow"))
    if (paused := describe.paused(view)) is not None:
        out.append(Text(f"  {paused}", style="yellow"))
    out.extend(Text(f"  {line}", style="yellow") for line in describe.dry_runs(view))
    rows = describe.analysis_rows(view)
    if view.last_analysis:
        table = Table(
            "trigger",
            "verdict",
            "value",
            "limit",
            "baseline",
            "why",
            title=f"last analysis {utc(view.last_analysis['at'])}",
        )
        table.title_justify = "left"
        for row in rows:
            style = VERDICT_STYLE.get(row.verdict, "")
            # The reason as text, not markup: a provider's message may hold "[/x]" or "[emerg]".
            table.add_row(
                row.trigger, f"[{style}]{row.verdict}[/{style}]", row.value, row.limit, row.baseline, Text(row.why)
            )
        out.append(table)
    tests = describe.regression_triggers(view)
    for log in view.rollbacks:
        out.extend(rollback_lines(log, tests))
    return out


def rollback_lines(log: dict[str, Any], tests: Collection[str] = ()) -> list[RenderableType]:
    """The rollback log as people read it; ``tests``: the regression triggers (value p, limit α)."""
    what = f"trigger {log['trigger']}" if log["trigger"] else log["cause"]
    value = ""
    if log["value"] is not None and log["trigger"] in tests:
        value = f": {p_value(log['value'])} ≤ α {short(log['threshold'])}"
    elif log["value"] is not None:
        value = f": {short(log['value'])} vs threshold {short(log['threshold'])}"
    lines: list[RenderableType] = [
        Text(f"  rollback #{log['id']} ({what}{value}) by {log['initiated_by']}", style="red"),
        Text(f"    why: {log['reason']}"),
        Text(f"    detected  {utc(log['detected_at'], ms=True)}"),
        Text(f"    decided   {utc(log['decided_at'], ms=True)}"),
        Text(
            f"    revert    started {utc(log['revert_started_at'], ms=True)}, "
            f"confirmed {utc(log['revert_confirmed_at'], ms=True)}"
        ),
    ]
    took = log["detected_to_confirmed_s"]
    if took is None:
        lines.append(Text("    the router has not confirmed weight 0 yet", style="yellow"))
    else:
        limit = log["max_duration_s"]
        verdict = "no limit set" if limit is None else ("met" if log["max_duration_met"] else "MISSED")
        limit_text = f" (max {format_duration(int(limit))}: {verdict})" if limit is not None else f" ({verdict})"
        # Milliseconds count in a fast revert; a slow one is read as the limit is written (22m4s, max 5m).
        took_text = f"{took:.3f}s" if took < 60 else span(took)
        lines.append(Text(f"    detected → confirmed in {took_text}{limit_text}"))
    confirmation = log.get("confirmation")
    if confirmation and confirmation.get("by_hand"):
        lines.append(
            Text(
                f"    BY HAND   {confirmation['confirmed_by']} confirmed it (override #{confirmation['override_id']}), "
                f"not the router: {confirmation['reason']}",
                style="yellow",
            )
        )
    elif confirmation:
        style = "" if confirmation["confirmed"] else "yellow"
        lines.append(Text(f"    router    {confirmation['summary']}", style=style))
    if log["metrics_after"] is None:
        lines.append(Text("    after: not read yet"))
    for m in log["metrics_after"] or []:
        c, b = m["canary"], m["baseline"]
        # Named by trigger (with its metric and window): two triggers on one metric read the
        # same metric over different windows, and "error_rate canary 0.5" then "error_rate
        # canary 0.3333" would seem to contradict each other.
        window = f" over {format_duration(m['window_s'])}" if m.get("window_s") else ""
        name = f"{m['trigger']} ({m['metric']}{window})" if m.get("trigger") else f"{m['metric']}{window}"
        lines.append(Text(f"    after: {name}: canary {short(c['value'])}, baseline {short(b['value'])}"))
    return lines


def render(view: ReleaseView) -> RenderableType:
    head = Text(f"{view.id}  {view.service} {view.baseline} → {view.version}  {view.state}", style="bold")
    return Group(head, *rollout_lines(view))


def wait(
    svc: Releases,
    release_id: str,
    *,
    poll_s: float = defaults.CONTROLLER_POLL_SECONDS,
    to_stderr: bool = False,
    timeout_s: float | None = None,
) -> ReleaseView:
    """Drive ``release_id`` (unless another controller holds it) and show its progress until it ends.

    ``to_stderr`` shows the progress on stderr (stdout is kept for ``--json``); after ``timeout_s``
    the release is left as it is (still driven by any running controller) and returned.
    """
    out = cli_console(stderr=True) if to_stderr else console
    # Imported here: the commands that only read releases should not pay for the controller's parts.
    from shiprail.controller import Controller
    from shiprail.notifiers.notifier import Notifier

    def say(release_id: str, kind: str, detail: dict[str, Any]) -> None:
        # A step held by a freeze (or before Verify by the on_call gate) may wait for hours: the
        # job's log says why it is not moving, once per hold, as the `held` notification does.
        if kind == HELD_EVENT:
            out.print(f"{svc.clock.now():%H:%M:%S} held: {detail.get('reason')}", style="yellow", markup=False)
        elif kind == DRY_RUN_EVENT:
            # What a dry-run trigger would have done, once per trigger and step: the job's log is where a
            # team trialling a trigger looks.
            out.print(f"{svc.clock.now():%H:%M:%S} {detail.get('would')}", style="yellow", markup=False)

    ctl = Controller(svc, only={release_id}, poll_s=poll_s, on_event=say)
    # The communication plan is kept in CI too: a notifier beside the loop, in a thread of its own
    # so a slow channel never holds the release; at the end it gets a bounded moment to deliver.
    told: set[tuple[str, str]] = set()

    def failed(release_id: str, kind: str, detail: dict[str, Any]) -> None:
        # A channel that cannot be reached (a webhook URL not set where this runs) says so where
        # people look, once per channel and error, not at every retry; the audit trail has each.
        key = (str(detail.get("channel")), str(detail.get("error")))
        if kind == "notification.failed" and key not in told:
            told.add(key)
            # Not markup: a channel's answer is quoted in it ("[/error]" would raise, "[x]" be eaten).
            out.print(
                f"{svc.clock.now():%H:%M:%S} notification not sent: {detail['reason']}", style="yellow", markup=False
            )

    notifier = Notifier(svc.store, svc.clock, svc.policy.channels, on_event=failed)
    stop = threading.Event()
    notify_thread = threading.Thread(target=notifier.run, args=(stop,), name="shiprail-notifier", daemon=True)
    notify_thread.start()
    try:
        return follow(svc, release_id, out, timeout_s=timeout_s, tick=ctl.tick)
    finally:
        # Bounded: on a store that stopped answering, handing the lease back would wait as long as
        # the stall (the lease then lapses by itself, and another controller takes the release).
        closing = threading.Thread(target=ctl.close, name="shiprail-controller-close", daemon=True)
        closing.start()
        closing.join(CLOSE_SECONDS)

        def deliver_last() -> None:
            try:
                notifier.tick()
            except (StoreError, SQLAlchemyError) as exc:
                # Not a traceback from the thread: what is due stays queued for a controller.
                why = store_error_text(exc)
                out.print(
                    f"{svc.clock.now():%H:%M:%S} notifications due now stay queued for a controller: "
                    f"cannot reach the store: {why}",
                    markup=False,
                )

        last = threading.Thread(target=deliver_last, name="shiprail-notifier-last", daemon=True)
        last.start()
        last.join(defaults.NOTIFY_FINAL_SECONDS)
        stop.set()


def follow(
    svc: Releases,
    release_id: str,
    out: Console,
    *,
    timeout_s: float | None = None,
    tick: Callable[[], datetime | None] | None = None,
    stall_grace_s: float = defaults.WAIT_STALL_GRACE_SECONDS,
) -> ReleaseView:
    """Show ``release_id``'s progress until it ends, a person pauses it, it waits at a step for a person to
    promote it (``promote: manual``), or ``timeout_s`` passes: live on a terminal, else a line a change.

    ``tick`` drives the release between looks (a controller's ``tick``); without it another process
    (``shiprail serve``, ``shiprail controller``) drives and this only watches. A look still
    unanswered ``stall_grace_s`` after the timeout (a stalled store) is given up.
    """
    deadline = None if timeout_s is None else svc.clock.now() + timedelta(seconds=timeout_s)
    stall_deadline = None if deadline is None else deadline + timedelta(seconds=stall_grace_s)

    def look() -> tuple[datetime | None, ReleaseView]:
        return (tick() if tick is not None else None), svc.get(release_id)

    last_line = ""
    seen: ReleaseView | None = None
    away = ""  # why the store cannot be reached, while it cannot
    # On a terminal a person watches, a live display; in a log (even one FORCE_COLOR colours), a line a change.
    live_display = on_terminal(out)
    with Live(console=out, refresh_per_second=4, transient=False) if live_display else _NoLive() as live:
        while True:
            try:
                wake, view = _within(stall_deadline, svc.clock, look)
            except _Silent:
                now = svc.clock.now()
                out.print(f"{now:%H:%M:%S} the store did not answer by --timeout; looking no longer", markup=False)
                if seen is None:
                    raise StoreError("the store did not answer by --timeout; see `shiprail release show`") from None
                return seen
            except SchemaChanged:
                raise  # a newer shiprail migrated the store: this one must not go on
            except (StoreError, SQLAlchemyError) as exc:
                # The database is away (a restart, a failover, connections cut): as the controller
                # does, look again, so a CI job's exit status still says how the release ended.
                now = svc.clock.now()
                why = store_error_text(exc)
                if why != away:
                    out.print(f"{now:%H:%M:%S} cannot reach the store: {why}; looking again", markup=False)
                    away = why
                if deadline is not None and now >= deadline:
                    if seen is None:
                        raise
                    return seen
                time.sleep(REFRESH_SECONDS)
                continue
            seen = view
            now = svc.clock.now()
            if away:
                out.print(f"{now:%H:%M:%S} the store answers again", markup=False)
                away = ""
            if live_display:
                live.update(render(view))
            else:
                line = _summary(view)
                if line != last_line:
                    # Not markup: reasons and router errors quote what was said ("nginx: [emerg] ...").
                    out.print(f"{now:%H:%M:%S} {line}", markup=False)
                    last_line = line
            if Status(view.status) in TERMINAL or view.status in (Status.PLANNED.value, Status.STAGING.value):
                return view
            if held_by_person(view) or awaiting_promotion(view) or held_for_on_call(view):
                # Only a person resumes, promotes or hands it over: waiting on would hang a CI job for ever.
                return view
            if deadline is not None and now >= deadline:
                return view
            delay = REFRESH_SECONDS
            if wake is not None:
                delay = max(0.0, min(delay, (wake - svc.clock.now()).total_seconds()))
            time.sleep(delay)


def held_by_person(view: ReleaseView) -> bool:
    """Paused by a person (not for missing data, which resumes by itself when data returns)."""
    return view.status == Status.PAUSED.value and not view.progress.get("paused_for_no_data")


def awaiting_promotion(view: ReleaseView) -> bool:
    """Held at a step with ``promote: manual``: the controller asked to promote it (baked, its analysis
    passing) and only a person's ``release promote`` moves it on (``shiprail.store.holds``)."""
    return view.status == Status.ROLLING_OUT.value and (view.held or {}).get("gate") == Gate.JUDGMENT.value


def held_for_on_call(view: ReleaseView) -> bool:
    """Held at 100% before Verify because the person on call may not answer for it (gate ``on_call``):
    only a handover or a fixed shiprail.yaml lets it on (``shiprail.store.holds``)."""
    return view.status == Status.ROLLING_OUT.value and (view.held or {}).get("gate") == Gate.ON_CALL.value


def _summary(view: ReleaseView) -> str:
    last = view.last_analysis
    verdicts = ", ".join(_verdict(r) for r in last["results"]) if last else "no analysis yet"
    weight = view.progress.get("applied_weight")
    trouble = view.router_trouble
    # The error, not the attempts: a line a change, not a line a failed pass.
    problem = f"; the router cannot apply {trouble['weight']:g}%: {trouble['error']}" if trouble else ""
    # A pause for missing data lifts itself: say so, or a CI log reads like one nobody will resume.
    why = ""
    if view.status == Status.PAUSED.value and view.progress.get("paused_for_no_data"):
        why = " for a provider error" if view.progress.get("provider_failing") else " for missing data"
    return f"{view.state}{why}, router at {percent(weight)}: {verdicts}{problem}"


def _verdict(result: dict[str, Any]) -> str:
    """One trigger's verdict; an inconclusive one with its reason (too few samples, no data, a failed query)."""
    name = result["trigger"] + (DRY_RUN_SHOWN if result.get("dry_run") else "")
    if result["verdict"] == "inconclusive" and result.get("reason"):
        return f"{name} inconclusive ({result['reason']})"
    return f"{name} {result['verdict']}"


class _NoLive:
    """Stands in for Live when stdout is not a terminal (CI logs get one line per change)."""

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: RenderableType) -> None:
        return None
