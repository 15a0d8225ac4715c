"""Markdown for people: the sections the retrospective and the release package share.

Every function here is pure: a ``ReleaseRecord`` in, Markdown text out. Times are UTC.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from shiprail.describe import p_value, result_limit
from shiprail.domain.contract import trigger_name
from shiprail.export import history as h
from shiprail.export.record import ReleaseRecord
from shiprail.schema.plan import Trigger
from shiprail.store import audit

_CODE_SPAN = re.compile(r"(`+).+?\1")
_NUMBERED = re.compile(r"\d{1,9}(?=[.)](\s|$))")
_BLOCK_MARK = re.compile(r"(#{1,6}|[-+*])(\s|$)|>")


def text(value: Any) -> str:
    """What people wrote (a summary, a change, a reason), as one line of inline Markdown.

    Line breaks are folded, so it cannot end the paragraph, list item or table row it is in and
    start a heading, a list or an HTML block of its own; ``<`` outside code spans is written
    ``&lt;``, so it cannot open raw HTML (``<script>``, or ``<!--`` hiding the rest of the page);
    a leading ``#``, ``-``, ``>`` or ``1.`` is escaped. Emphasis and code spans still render.
    """
    folded = " ".join(("" if value is None else str(value)).split())
    out, last = [], 0
    for span in _CODE_SPAN.finditer(folded):
        out += [folded[last : span.start()].replace("<", "&lt;"), span.group()]
        last = span.end()
    out.append(folded[last:].replace("<", "&lt;"))
    line = "".join(out)
    numbered = _NUMBERED.match(line)
    if numbered:
        return f"{line[: numbered.end()]}\\{line[numbered.end() :]}"
    return f"\\{line}" if _BLOCK_MARK.match(line) else line


def cell(value: Any) -> str:
    """One table cell: people's text made inline (see ``text``), pipes escaped, empty as nothing."""
    return text(value).replace("|", "\\|")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def code(text: Any) -> str:
    """Inline code, safe for backticks inside."""
    value = str(text)
    fence = "``" if "`" in value else "`"
    return f"{fence}{value}{fence}"


def verdicts(counts: Counter[str]) -> str:
    """``12 pass, 1 inconclusive``, or ``none``."""
    order = ["pass", "fail", "inconclusive"]
    keys = [k for k in order if counts.get(k)] + sorted(k for k in counts if k not in order and counts[k])
    return ", ".join(f"{counts[k]} {k}" for k in keys) or "none"


def plan_file_shown(record: ReleaseRecord) -> str:
    """The plan file as it was named when the release was created (else the stored path)."""
    for event in record.events:
        if event.kind == "release.created":
            name = audit.payload_of(event).get("plan_file")
            if name:
                return str(name)
    return record.plan_file


def risk_text(record: ReleaseRecord) -> str:
    """``high (tag payments is high-risk in shiprail.yaml)``."""
    reason = record.resolved.risk_reason
    return f"{record.risk} ({reason})" if reason else record.risk


def facts(record: ReleaseRecord, extra: Sequence[tuple[str, str]] = ()) -> str:
    """The two-column table that heads a retrospective or a package index."""
    out = h.outcome(record)
    ended = out.ended_at
    duration = (
        f"{h.when(record.created_at)} → {h.when(ended)} ({h.span((ended - record.created_at).total_seconds())})"
        if ended
        else f"since {h.when(record.created_at)}"
    )
    rows = [
        ("Release", code(record.id)),
        ("Service", record.service),
        ("Version", f"{record.baseline} → {record.version}"),
        ("Owner", record.owner),
        ("Risk", risk_text(record)),
        ("Outcome", out.headline),
        (
            "Plan",
            f"{code(plan_file_shown(record))}, plan hash {code(record.plan_hash[:12])}, "
            f"contract hash {code(record.contract_hash[:12])}",
        ),
        ("Times (UTC)", duration),
        *extra,
    ]
    return table(["", ""], rows)


# ------------------------------------------------------------------------------------ sections


def timeline_section(record: ReleaseRecord) -> str:
    """Every phase, step, gate and decision, in order, from the audit events."""
    rows = [(h.when(e.at), e.place, e.what, e.who, e.note) for e in h.timeline(record)]
    if not rows:
        return "No events recorded."
    return table(["time (UTC)", "phase", "event", "who", "note"], rows)


def phases_section(record: ReleaseRecord) -> str:
    """How long the release stayed in each state."""
    rows = []
    for p in h.phases(record):
        how = "" if p.left_by is None else f"{p.left_by} → {p.to}"
        rows.append((p.label, h.when(p.entered_at), h.when(p.left_at), h.span(p.seconds), how))
    return table(["phase", "entered", "left", "for", "left by"], rows)


def gates_section(record: ReleaseRecord) -> str:
    """Every gate evaluated: where, how often, its final verdict and its first failure."""
    summaries = h.gate_summaries(record)
    if not summaries:
        return "No gate was evaluated."
    rows = []
    for s in summaries:
        earlier = Counter(s.verdicts[:-1])
        before = ", ".join(f"{v} ×{n}" for v, n in earlier.items())
        failure = s.first_failure()
        if failure and failure != s.reasons[-1]:
            before += f"; first failure: {failure}"
        rows.append((s.action, s.place, s.gate, s.final, s.attempts, s.reasons[-1], before))
    return table(["action", "where", "gate", "verdict", "attempts", "reason", "before that"], rows)


def deliveries_section(record: ReleaseRecord) -> str:
    """Each attempt to tell an audience of the communication plan, from the audit events."""
    rows = []
    for w in h.walk(record):
        if w.event.kind not in ("notification.sent", "notification.failed"):
            continue
        p = w.payload
        if w.event.kind == "notification.sent":
            result = "delivered"
        else:
            then = f"retry at {h.when(p['retry_at'])}" if p.get("retry_at") else "given up" if p.get("final") else ""
            result = f"failed: {p.get('error')}" + (f"; {then}" if then else "")
        about = f"{p.get('event')} (seq {p.get('event_seq')})"
        rows.append((h.when(w.event.at), about, p.get("audience"), p.get("channel"), p.get("attempt"), result))
    if not rows:
        return "No notification was sent."
    return table(["at (UTC)", "event", "audience", "channel", "attempt", "result"], rows)


def overrides_section(record: ReleaseRecord) -> str:
    """Each override, who passed which gate, for what (the freeze, person or tests that refused it:
    ``refused_by``) and why, and the post-mortem it opened."""
    if not record.overrides:
        return "No gate was overridden."
    pms = {p["override_id"]: p for p in record.postmortems}
    rows = []
    for o in record.overrides:
        pm = pms.get(o["id"])
        status = "–"
        if pm is not None:
            status = pm["status"] + (f" ({pm['closed_by']}): {pm['summary']}" if pm["summary"] else "")
        rows.append(
            (
                f"#{o['id']}",
                o["action"],
                h.override_gates(o["gates"], o.get("refused_by")),
                o["by"],
                h.when(o["at"]),
                o["reason"],
                f"#{pm['id']}" if pm else "–",
                status,
            )
        )
    return table(["override", "action", "gate(s)", "by", "at (UTC)", "reason", "post-mortem", "status / summary"], rows)


def _cause(log: dict[str, Any]) -> str:
    if log["cause"] == "manual":
        return f"manual, by {log['initiated_by']}"
    if log["cause"] == "no_data":
        return "no data (automatic)"
    return f"trigger {code(log['trigger'])} (automatic)" if log["trigger"] else f"{log['cause']} (automatic)"


def _weight_before(log: dict[str, Any], place: str) -> str:
    weight = h.weight_text(log["weight_before"]) if log["weight_before"] else "none"
    if place.startswith("step") and place.endswith(f"({weight})"):
        return place  # "step 3 (50%)" says both
    # "paused at step 1 (1%)" with 1%: "1% (paused at step 1)"; a step never applied: "none (step 1 (1%))".
    return f"{weight} ({place.removesuffix(f' ({weight})')})" if place else weight


def rollback_section(record: ReleaseRecord) -> str:
    """Each rollback: what fired, when it was seen, decided, reverted, and how much traffic it touched."""
    if not record.rollbacks:
        return "Nothing rolled back."
    place = {"rolled_back": "rolled back", "rolling_back": "rolling back (revert not confirmed)"}
    parts = []
    total = h.exposure(record)
    places = h.rollback_places(record)
    for n, log in enumerate(record.rollbacks, 1):
        limit = log["max_duration_s"]
        took = log["detected_to_confirmed_s"]
        within = ""
        if limit is not None and took is not None:
            within = f" (the contract allows {h.span(limit)}: {'met' if log['max_duration_met'] else 'missed'})"
        touched = ""
        if log["weight_before"] and took is not None:
            touched = f"; from detection to revert: {h.weight_text(log['weight_before'])} for {h.span(took)}"
        rows = [
            ("Cause", _cause(log)),
            ("Reason" if log["cause"] == "manual" else "What fired", log["reason"]),
            ("Initiated by", h.actor_text(log["initiated_by"])),
            ("Weight before", _weight_before(log, places[n - 1] if n <= len(places) else "")),
            ("Detected at", h.when(log["detected_at"])),
            ("Decided at", h.when(log["decided_at"])),
            ("Revert started", h.when(log["revert_started_at"])),
            ("Revert confirmed", h.when(log["revert_confirmed_at"]) + (" (by hand)" if h.by_hand(log) else "")),
            ("Detected → confirmed", h.span(took) + within),
            ("State after", place.get(record.status, record.status.replace("_", " "))),
            ("Traffic on the new version", h.exposure_text(total) + touched),
            ("Metrics after", h.metrics_after_text(log["metrics_after"] or [])),
        ]
        hand = h.by_hand(log)
        if hand is not None:
            rows.append(("Confirmed by", h.by_hand_text(hand)))
        elif log.get("confirmation"):
            confirmation = log["confirmation"]
            said = confirmation.get("summary") if isinstance(confirmation, dict) else None
            rows.append(("Router confirmation", said or json.dumps(confirmation, sort_keys=True)))
        parts.append(table(["", f"rollback {n}"], rows))
    return "\n\n".join(parts)


def rollout_section(record: ReleaseRecord) -> str:
    """The staged rollout as planned (weights, bakes) next to how it ran."""
    rows = []
    for run in h.rollout_as_run(record):
        planned = h.span(run.planned_bake_s) if run.planned_bake_s else "–"
        if run.slot == h.VERIFY:
            planned = f"{planned} window"
        rows.append(
            (
                run.number,
                h.weight_text(run.weight),
                planned,
                h.when(run.entered_at) if run.reached else "–",
                h.when(run.applied_at) if run.applied_at else "–",
                h.span(run.baked_s) if run.baked_s is not None else "–",
                h.when(run.left_at) if run.left_at else "–",
                h.span(run.seconds),
                verdicts(run.verdicts) if run.reached else "–",
                run.result() + (f", paused {run.pauses}×" if run.pauses else ""),
            )
        )
    return table(
        [
            "step",
            "weight",
            "planned bake",
            "entered",
            "weight confirmed",
            "baked",
            "left",
            "ran for",
            "analyses",
            "result",
        ],
        rows,
    )


def metrics_section(record: ReleaseRecord) -> str:
    """Per step, the last analysis' value of every trigger against its limit and the baseline."""
    steps = h.metrics_per_step(record)
    if not any(s.count for s in steps):
        return "No analysis ran."
    triggers = {trigger_name(t): t for t in record.resolved.contract.triggers}
    rows = []
    for s in steps:
        first = True
        label = f"{s.run.number} ({h.weight_text(s.run.weight)})"
        summary = f"{s.count}, last {h.when(s.last_at)[11:]}" if s.count else "0"
        for t in s.triggers + s.probes:
            samples = h.number(t["canary_samples"]) + (
                f" / {h.number(t['baseline_samples'])}" if t["baseline_samples"] is not None else ""
            )
            rows.append(
                (
                    label if first else "",
                    summary if first else "",
                    t["trigger"],
                    h.verdict_text(t),
                    _value(t["value"], triggers.get(t["trigger"])),
                    # One judged on no data stored no limit: the plan's, as `release show` gives it.
                    result_limit(t, triggers.get(t["trigger"])),
                    h.number(t["baseline"]),
                    samples,
                )
            )
            first = False
        if first:
            rows.append((label, summary, "–", "–", "", "", "", ""))
    return table(["step", "analyses", "trigger", "verdict", "value", "limit", "baseline", "samples"], rows)


def _value(value: Any, trigger: Trigger | None) -> str:
    """A trigger's value in an analysis: a regression test's is its p-value (``p = 0.003``)."""
    return p_value(value) if trigger is not None and trigger.regression is not None else h.number(value)


def dry_run_section(record: ReleaseRecord) -> str:
    """Where the contract's dry-run triggers would have rolled the release back; empty without dry runs."""
    dry = record.resolved.contract.dry_runs()
    if not dry:
        return ""
    names = ", ".join(code(trigger_name(t)) for t in dry)
    breaches = h.dry_run_breaches(record)
    if not breaches:
        return f"Dry-run triggers ({names}): none breached; they would not have rolled the release back."
    rows = [(h.when(b.at), b.trigger, b.place, h.number(b.value), h.number(b.threshold), b.reason) for b in breaches]
    return (
        f"Dry-run triggers ({names}) are judged and reported but never roll back. Where they would have (the first "
        "breach of each at each step):\n\n" + table(["at (UTC)", "trigger", "where", "value", "limit", "reason"], rows)
    )


def contract_section(record: ReleaseRecord) -> str:
    """The frozen rollback contract in words."""
    c = record.resolved.contract
    lines = "\n".join(f"- {h.trigger_text(t)}" for t in c.triggers)
    after = "With no data to judge, the release " + ("pauses" if c.on_no_data == "pause" else "rolls back") + "."
    if c.revert.max_duration:
        after += f" A rollback must have all traffic back on the baseline within {h.span(c.revert.max_duration)}."
    return f"{lines}\n\n{after}"


def verify_section(record: ReleaseRecord) -> str:
    """The post-release validation window: when, who, probes, analyses."""
    v = h.verify_report(record)
    if not v.reached:
        return "The release never reached Verify."
    closed = "–"
    if v.closed_at is not None:
        closed = f"{h.when(v.closed_at)} ({'complete' if v.closed_by == 'complete' else v.closed_by})"
    rows = [
        ("Window opened", f"{h.when(v.opened_at)} (when the release entered Verify)"),
        ("Window planned", f"{h.span(v.planned_s)}, until {h.when(v.ends_at)}"),
        ("Window closed", closed),
        ("On call", v.on_call),
        ("Analyses", verdicts(v.verdicts)),
    ]
    out = [table(["", ""], rows)]
    if v.handovers:
        out.append(
            table(
                ["handed over", "from", "to", "by", "reason"],
                [(h.when(x["at"]), x["from"], x["to"], x["by"], x["reason"] or "") for x in v.handovers],
            )
        )
    if v.probes:
        out.append(
            table(
                ["probe", "analyses", "passed", "last verdict", "last value", "last analysis", "last reason"],
                [
                    (
                        p.name,
                        p.analyses,
                        p.passed,
                        p.last_verdict or "–",
                        h.number(p.last_value),
                        h.when(p.last_at),
                        p.last_reason or "",
                    )
                    for p in v.probes
                ],
            )
        )
    else:
        out.append("The plan has no probes.")
    return "\n\n".join(out)
