"""The release package: everything about one release, in one directory, for people and machines.

``shiprail release export ID --out DIR`` writes::

    README.md              the index: the release at a glance, what each file holds, how to check it
    release.json           the same for machines: the release, its outcome, the parts, the audit anchors
    plan.md                the plan in words: scope, risk, gates, rollout, contract, Verify, communication
    plan.yaml              the plan file exactly as stored when the release was created (its sha256 is the plan hash)
    plan.resolved.json     the plan resolved against policy and service: what the release ran
    rollout.md / .json     the staged rollout as planned and as run, and the metrics of every step
    gates.md / .json       gate evaluations with their evidence, approvals, QA sign-offs, check runs, overrides
    verify.md / .json      the post-release validation: window, on-call, probes, analyses during Verify
    rollback.md / .json    the rollback log (only when something rolled back)
    retrospective.md       the retrospective as stored (only once the release has ended)
    audit.md               the release's audit events, with their hashes, and how to check them
    audit/events.jsonl     those events in the form of `shiprail audit export`
    audit/chain.json       the chain head at export time and the release's place in the chain
    MANIFEST.sha256        the sha256 of every file above (``sha256sum -c MANIFEST.sha256``)
    MANIFEST.sha256.hmac   an HMAC-SHA256 of the manifest, when SHIPRAIL_AUDIT_KEY is set

Everything except the retrospective is derived from the store at export time, so editing the
retrospective never loses a fact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shiprail import __version__, retro
from shiprail.errors import AuditChainBroken, BadInput, ShiprailError
from shiprail.export import history as h
from shiprail.export import markdown as md
from shiprail.export.record import ReleaseRecord, load_record
from shiprail.schema.policy import APPROVE_ROLES, QA_ROLE
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import Release, Retrospective
from shiprail.store.rows import iso

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.hmac"
EVENTS = "audit/events.jsonl"
CHAIN = "audit/chain.json"
EXPORTER = "shiprail:export"
"""The actor of ``package.exported`` when the command names nobody."""
HASH_RULE = "sha256(prev_hash || canonical JSON of {seq, at, actor, kind, release_id, payload})"

# What each part holds, in the order the index lists them.
PARTS: dict[str, str] = {
    "release.json": "the release, its outcome, the parts and the audit anchors, for machines",
    "plan.md": "the plan in words: scope, risk, gates, rollout, rollback contract, Verify, communication "
    "(and each notification as sent)",
    "plan.yaml": "the plan file exactly as stored when the release was created",
    "plan.resolved.json": "the plan resolved against policy and service: what the release ran",
    "rollout.md": "the staged rollout as planned and as run; the metrics of every step",
    "rollout.json": "the same, with every analysis and every weight the router confirmed",
    "gates.md": "gate results, approvals, QA sign-offs, check runs (tests, load test), overrides",
    "gates.json": "every gate evaluation with its evidence, and the records behind them",
    "verify.md": "the post-release validation: window, on-call, probes, analyses during Verify",
    "verify.json": "the same, with the analyses of Verify",
    "rollback.md": "the rollback log: what fired, when, how fast traffic went back",
    "rollback.json": "the rollback logs as stored",
    "retrospective.md": "the retrospective as it stands (generated when the release ended, edited by people)",
    "audit.md": "the release's audit events with their hashes, and how to check them",
    EVENTS: "the release's audit events, one JSON object a line (the form of `shiprail audit export`)",
    CHAIN: "the chain head at export time and the release's first and last event",
}


@dataclass(frozen=True)
class Written:
    """What ``write_package`` wrote."""

    directory: Path
    release_id: str
    files: list[str]
    events: int
    signed: bool
    chain_broken: audit.Finding | None = None
    """Where the audit chain was broken when it was exported with ``broken_chain`` (the package says so)."""


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(manifest: bytes, key: str) -> str:
    """The HMAC-SHA256 of the manifest's bytes under ``key``, hex."""
    return hmac.new(key.encode("utf-8"), manifest, hashlib.sha256).hexdigest()


def manifest_text(files: Mapping[str, bytes]) -> bytes:
    """``sha256sum`` format: ``<hex>  <path>`` a line, sorted by path."""
    return "".join(f"{_sha256(files[name])}  {name}\n" for name in sorted(files)).encode("utf-8")


# ------------------------------------------------------------------------------------ JSON parts


def _audit_summary(record: ReleaseRecord) -> dict[str, Any]:
    events = record.events
    return {
        "events": len(events),
        "first_seq": events[0].seq if events else None,
        "last_seq": events[-1].seq if events else None,
        "last_hash": events[-1].hash if events else None,
        "head": {"seq": record.head_seq, "hash": record.head_hash},
    }


def broken_json(finding: audit.Finding | None) -> dict[str, Any] | None:
    """Where the chain was broken at export: ``release.json``'s ``audit.chain_broken``."""
    return None if finding is None else {"seq": finding.seq, "problem": finding.kind, "detail": finding.detail}


def release_json(
    record: ReleaseRecord,
    now: datetime,
    files: list[str],
    retrospective: dict[str, Any] | None,
    broken: audit.Finding | None = None,
) -> dict[str, Any]:
    """``release.json``: the release and its outcome, the package's parts and its audit anchors."""
    out = h.outcome(record)
    r = record.resolved
    return {
        "format": "shiprail-release-package/1",
        "shiprail_version": __version__,
        "exported_at": now.isoformat(),
        "release": {
            "id": record.id,
            "service": record.service,
            "version": record.version,
            "baseline": record.baseline,
            "owner": record.owner,
            "risk": record.risk,
            "risk_reason": r.risk_reason,
            "summary": r.summary,
            "changes": record.changes(),
            "user_facing": record.user_facing(),
            "tags": r.tags,
            "status": record.status,
            "created_at": iso(record.created_at),
            "frozen_at": iso(record.frozen_at),
            "state_since": iso(record.state_since),
            "plan_file": md.plan_file_shown(record),
            "plan_hash": record.plan_hash,
            "contract_hash": record.contract_hash,
            # What approvals approve: the hash of the resolved release (see shiprail.schema.resolved).
            "resolved_hash": record.resolved_hash,
            # plan.yaml is the stored text; its sha256 is the plan hash unless the file's line endings
            # were changed when it was read (CRLF files).
            "plan_text_sha256": _sha256(record.plan_text.encode("utf-8")),
        },
        "outcome": {
            "status": out.status,
            "headline": out.headline,
            "detail": out.detail,
            "ended_at": iso(out.ended_at),
        },
        "retrospective": retrospective,
        "audit": _audit_summary(record) | {"hash_rule": HASH_RULE, "chain_broken": broken_json(broken)},
        "parts": {name: PARTS[name] for name in PARTS if name in files},
    }


def rollout_json(record: ReleaseRecord) -> dict[str, Any]:
    """``rollout.json``: the plan's steps, each step as run, phases, router confirmations, analyses."""
    r = record.resolved
    ex = h.exposure(record)
    return {
        "planned": {
            "steps": [{"weight": s.weight, "bake_s": s.bake} for s in r.steps],
            "analysis_interval_s": r.analysis_interval,
            "verify_window_s": r.verify_window,
        },
        "as_run": [
            {
                "step": run.number,
                "weight": run.weight,
                "planned_bake_s": run.planned_bake_s,
                "entered_at": iso(run.entered_at),
                "weight_confirmed_at": iso(run.applied_at),
                "baked_s": run.baked_s,
                "left_at": iso(run.left_at),
                "left_by": run.left_by,
                "seconds": run.seconds,
                "result": run.result(),
                "pauses": run.pauses,
                "analyses": dict(run.verdicts),
            }
            for run in h.rollout_as_run(record)
        ],
        "phases": [
            {
                "phase": p.label,
                "entered_at": iso(p.entered_at),
                "left_at": iso(p.left_at),
                "left_by": p.left_by,
                "to": p.to,
                "reason": p.reason,
            }
            for p in h.phases(record)
        ],
        "router": [
            {"at": iso(w.event.at), "seq": w.event.seq} | w.payload
            for w in h.walk(record)
            if w.event.kind in ("router.applied", "router.error", "router.failed")
        ],
        "exposure": {
            "per_weight": [{"weight": w, "seconds": s} for w, s in ex.per_weight],
            "full_traffic_seconds": ex.full_traffic_s,
        },
        "metrics_per_step": [
            {
                "step": m.run.number,
                "weight": m.run.weight,
                "analyses": m.count,
                "last_at": m.last_at,
                "last_verdict": m.last_verdict,
                "triggers": m.triggers,
                "probes": m.probes,
            }
            for m in h.metrics_per_step(record)
        ],
        "analyses": record.analyses,
    } | (
        # Only for a contract with dry runs: the package of a release without them is as before.
        {
            "dry_runs": [
                {
                    "at": iso(b.at),
                    "trigger": b.trigger,
                    "where": b.place,
                    "weight": b.weight,
                    "value": b.value,
                    "threshold": b.threshold,
                    "reason": b.reason,
                }
                for b in h.dry_run_breaches(record)
            ]
        }
        if r.contract.dry_runs()
        else {}
    )


def gates_json(record: ReleaseRecord) -> dict[str, Any]:
    """``gates.json``: every evaluation with its evidence and place, and the records the gates read."""
    places = h.gate_places(record)
    return {
        "evaluations": [g | {"where": where} for g, where in zip(record.gates, places, strict=True)],
        "summary": [
            {
                "action": s.action,
                "gate": s.gate,
                "where": s.place,
                "attempts": s.attempts,
                "verdicts": s.verdicts,
                "final": s.final,
                "reason": s.reasons[-1] if s.reasons else None,
            }
            for s in h.gate_summaries(record)
        ],
        # ``counts``: whether the approvals gate counts it (None: planned, judged at Stage).
        "approvals": [a | {"counts": h.approval_counts(record, a)} for a in record.approvals],
        # ``counts``: whether the qa gate counts it (None: before the rollout starts, judged then).
        "qa_signoffs": [x | {"counts": h.signoff_counts(record, x)} for x in record.signoffs],
        "check_runs": record.check_runs,
        "overrides": record.overrides,
        "postmortems": record.postmortems,
    }


def verify_json(record: ReleaseRecord) -> dict[str, Any]:
    """``verify.json``: the validation window and what was seen in it."""
    v = h.verify_report(record)
    return {
        "reached": v.reached,
        "opened_at": iso(v.opened_at),
        "planned_window_s": v.planned_s,
        "ends_at": v.ends_at.isoformat() if isinstance(v.ends_at, datetime) else v.ends_at,
        "closed_at": iso(v.closed_at),
        "closed_by": v.closed_by,
        "on_call": v.on_call,
        "handovers": [{**ho, "at": iso(ho["at"])} for ho in v.handovers],
        "probes": [p.__dict__ for p in v.probes],
        "analysis_verdicts": dict(v.verdicts),
        "analyses": v.analyses,
    }


# ------------------------------------------------------------------------------------ Markdown parts


def _title(record: ReleaseRecord, what: str) -> str:
    return f"# {what}: {record.service} {record.version}\n\nRelease {md.code(record.id)}. Times are UTC."


def plan_md(record: ReleaseRecord) -> str:
    """``plan.md``: the plan in words."""
    r = record.resolved
    changes = record.changes()
    facing = record.user_facing()
    scope = [f"**{md.text(r.summary)}**" if r.summary else "_No summary._"]
    if changes:
        scope.append("\n".join(f"- {md.text(c)}" for c in changes))
    scope.append(
        f"User-facing: {'yes' if facing else 'no' if facing is False else 'not said'}. "
        f"Tags: {', '.join(r.tags) or 'none'}. Risk: {md.risk_text(record)}."
    )
    gates = [
        f"- approvals to enter Stage: {r.approvals_required}",
        f"- QA checklist {'required' if r.qa_required else 'not required'}"
        + (":\n" + "\n".join(f"  - {md.text(item)}" for item in r.qa_checklist) if r.qa_checklist else ""),
    ]
    gates += [f"- test {md.code(t.name)}: {md.code(t.command)}" for t in r.tests]
    if r.load_test is not None:
        limits = r.load_test.thresholds.model_dump(exclude_none=True)
        gates.append(
            f"- load test ({'required' if r.load_test_required else 'optional'}): "
            f"{r.load_test.users} users for {h.span(r.load_test.duration)}, limits "
            + ", ".join(f"{k} {v:g}" for k, v in limits.items())
        )
    elif r.load_test_required:
        gates.append("- a load test is required")
    steps = " → ".join(f"{s.weight:g}%" + (f" {h.span(s.bake)}" if s.bake else "") + s.shown_promote for s in r.steps)
    verify = [
        f"- window {h.span(r.verify_window)}, on call {r.on_call}",
        *(f"- probe {md.code(p.name)}: {p.method} {p.url}, expects {p.expect_status}" for p in r.probes),
    ]
    comms = [f"- {c.audience}: {', '.join(c.notify)} on {', '.join(c.on)}" for c in r.communication]
    target = r.target
    text = [
        _title(record, "Release plan"),
        md.facts(record),
        "## Scope\n\n" + "\n\n".join(scope),
        "## Gates\n\n" + "\n".join(gates),
        f"## Rollout\n\n{steps}; the contract is analysed every {h.span(r.analysis_interval)}. Traffic is split "
        f"by the {md.code(target.router.type)} router; metrics come from the {md.code(target.provider.type)} "
        "provider.",
        "## Rollback contract\n\nFrozen when Stage started"
        + (f" ({h.when(record.frozen_at)})" if record.frozen_at else "")
        + f"; contract hash {md.code(record.contract_hash)}.\n\n"
        + md.contract_section(record),
        "## Verify\n\n" + "\n".join(verify),
        "## Communication\n\n"
        + ("\n".join(comms) or "None.")
        + "\n\nAs sent (every attempt, from the audit events):\n\n"
        + md.deliveries_section(record),
        f"The file as stored is `plan.yaml` (plan hash {md.code(record.plan_hash)}); `plan.resolved.json` is "
        "what it resolved to against the policy and the service when the release was created or its plan last "
        f"replaced (release hash {md.code(record.resolved_hash)}: what its approvals approved).",
    ]
    return "\n\n".join(text) + "\n"


def rollout_md(record: ReleaseRecord) -> str:
    """``rollout.md``: the rollout as planned and as run, phase by phase, with the metrics."""
    text = [
        _title(record, "Rollout"),
        "## As planned and as run\n\n"
        "`entered` is when the release moved to the step; `weight confirmed` when the router confirmed its "
        "weight, which starts the bake; `baked` is the bake accrued under passing analyses.\n\n"
        + md.rollout_section(record),
        "Traffic on the new version: " + h.exposure_text(h.exposure(record)) + ".",
        "## Phases\n\n" + md.phases_section(record),
        "## Metrics per step\n\nThe last analysis of each step, trigger by trigger (`rollout.json` holds every "
        "analysis):\n\n" + md.metrics_section(record),
    ]
    dry = md.dry_run_section(record)
    if dry:
        text.append(f"## Dry runs\n\n{dry}")
    return "\n\n".join(text) + "\n"


def _evidence_block(data: Any) -> str:
    return "```json\n" + json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n```"


def _counts(record: ReleaseRecord, approval: dict[str, Any]) -> str:
    """Whether an approval counts, in gates.md's words (``h.approval_counts``)."""
    counts = h.approval_counts(record, approval)
    if counts:
        return "yes"
    if not approval["current"]:
        return _not_counting(approval, record.plan_hash)
    if approval["by"] in h.owners(record):
        return f"no ({approval['by']} owns or owned the release)"
    wrote = h.authors(record).get(approval["by"])
    if wrote is not None:
        return f"no ({approval['by']} {wrote})"
    roles = " or ".join(APPROVE_ROLES)
    if counts is None:
        # shiprail.yaml decides at Stage, and it is not in the package: say so rather than "yes".
        return f"at Stage, if {approval['by']} still holds the role {roles} in shiprail.yaml then"
    return f"no (not counted at Stage: {approval['by']} no longer held the role {roles} in shiprail.yaml)"


def _signoff_counts(record: ReleaseRecord, signoff: dict[str, Any]) -> str:
    """Whether a QA sign-off counts, in gates.md's words (``h.signoff_counts``)."""
    counts = h.signoff_counts(record, signoff)
    if counts:
        return "yes"
    if signoff["by"] in h.owners(record):
        return f"no ({signoff['by']} owns or owned the release)"
    if counts is None:
        # shiprail.yaml decides when the rollout starts, and it is not in the package.
        return f"at Start, if {signoff['by']} still holds the role {QA_ROLE} in shiprail.yaml then"
    return f"no (not counted at Start: {signoff['by']} no longer held the role {QA_ROLE} in shiprail.yaml)"


def _not_counting(approval: dict[str, Any], plan_hash: str) -> str:
    """Why an approval does not count: it approved an older plan, or the same plan resolved otherwise."""
    if approval["plan_hash"] != plan_hash:
        return "no (older plan)"
    if approval.get("resolved_hash") is None:  # stored before migration 0010, the plan replaced after it
        return "no (given before approvals recorded the release hash, and the plan was replaced since)"
    return "no (the plan resolved otherwise then: service file or shiprail.yaml)"


def gates_md(record: ReleaseRecord) -> str:
    """``gates.md``: the gate results and the evidence people signed or produced."""
    text = [_title(record, "Gate evidence"), "## Gate results\n\n" + md.gates_section(record)]
    if record.approvals:
        text.append(
            "## Approvals\n\n"
            + md.table(
                ["by", "at (UTC)", "plan hash", "release hash", "counts"],
                [
                    (
                        a["by"],
                        h.when(a["at"]),
                        md.code(a["plan_hash"][:12]),
                        md.code(a["resolved_hash"][:12]) if a.get("resolved_hash") else "not recorded",
                        _counts(record, a),
                    )
                    for a in record.approvals
                ],
            )
        )
    else:
        text.append("## Approvals\n\nNone.")
    if record.resolved.qa_checklist or record.signoffs:
        signed = {s["item"]: s for s in record.signoffs}
        text.append(
            "## QA sign-offs\n\n"
            + md.table(
                ["item", "signed by", "at (UTC)", "counts"],
                [
                    (
                        item,
                        signed[item]["by"] if item in signed else "not signed",
                        h.when(signed[item]["at"]) if item in signed else "",
                        _signoff_counts(record, signed[item]) if item in signed else "",
                    )
                    for item in record.resolved.qa_checklist
                ],
            )
        )
    runs = ["## Check runs"]
    if not record.check_runs:
        runs.append("No stage check was recorded.")
    for c in record.check_runs:
        verdict = "passed" if c["passed"] else "failed"
        kind = h.CHECK_KINDS.get(c["kind"], c["kind"]).capitalize()
        name = "" if c["name"] == c["kind"] else f" {md.code(c['name'])}"
        runs.append(f"### {kind}{name}: {verdict}\n\n{h.when(c['at'])} UTC: {c['summary']}")
        if c["evidence"]:
            runs.append(_evidence_block(c["evidence"]))
    text.append("\n\n".join(runs))
    text.append("## Overrides and post-mortems\n\n" + md.overrides_section(record))
    text.append("Every evaluation, with the evidence each gate was judged on, is in `gates.json`.")
    return "\n\n".join(text) + "\n"


def verify_md(record: ReleaseRecord) -> str:
    """``verify.md``: the post-release validation report."""
    v = h.verify_report(record)
    text = [_title(record, "Post-release validation"), md.verify_section(record)]
    if v.analyses:
        last = v.analyses[-1]
        text.append(
            f"## Last analysis in Verify ({h.when(last['at'])}: {last['verdict']})\n\n"
            + md.table(
                ["trigger", "verdict", "value", "limit", "baseline", "reason"],
                [
                    (
                        t.get("trigger"),
                        h.verdict_text(t),
                        h.number(t.get("value")),
                        h.number(t.get("threshold")),
                        h.number(t.get("baseline")),
                        t.get("reason"),
                    )
                    for t in last["results"]
                ],
            )
        )
    return "\n\n".join(text) + "\n"


def rollback_md(record: ReleaseRecord) -> str:
    """``rollback.md``: the rollback log."""
    return "\n\n".join([_title(record, "Rollback log"), md.rollback_section(record)]) + "\n"


def audit_md(record: ReleaseRecord) -> str:
    """``audit.md``: the events with their hashes, and how to check them against the chain."""
    events = record.events
    rows = [
        (
            e.seq,
            h.when(e.at),
            h.actor_text(e.actor),
            e.kind,
            md.code(e.hash[:16]),
            "↑" if i and events[i - 1].seq == e.seq - 1 else md.code(e.prev_hash[:16]),
        )
        for i, e in enumerate(events)
    ]
    head = f"At export the chain's head was seq {record.head_seq}, hash {md.code(record.head_hash)}."
    text = [
        _title(record, "Audit trail"),
        f"The {len(events)} events of this release, from the store's hash chain. Each event's hash is "
        f"{HASH_RULE}, so it commits to every event before it, of this release or any other. {head}",
        "## Checking them\n\n"
        "- `sha256sum -c MANIFEST.sha256` checks that no file of the package changed.\n"
        "- `shiprail release verify-package DIR` also recomputes every event's hash from its content, checks that "
        "events one seq apart link (`prev` is `↑`: the event before), that the files agree with each other, and "
        "the manifest's signature when the package has one (`SHIPRAIL_AUDIT_KEY`).\n"
        "- `shiprail release verify-package DIR --against-store` (or `--chain FILE` with a full "
        "`shiprail audit export`) checks the events against the whole chain: the chain verifies, each event is "
        "the one at its seq, none of the release's events up to the head is missing, and the head matches.",
        "## Events\n\n" + md.table(["seq", "time (UTC)", "who", "kind", "hash", "prev"], rows),
    ]
    return "\n\n".join(text) + "\n"


def index_md(
    record: ReleaseRecord, now: datetime, files: list[str], signed: bool, broken: audit.Finding | None = None
) -> str:
    """``README.md``: the release at a glance, what each file holds, how to check the package."""
    r = record.resolved
    out = h.outcome(record)
    changes = record.changes()
    glance = [
        (h.step_name(run), h.when(run.entered_at), h.span(run.seconds) if run.left_at else "–", run.result())
        for run in h.rollout_as_run(record)
    ]
    contents = [(f"[{name}]({name})", PARTS[name]) for name in PARTS if name in files]
    contents.append((MANIFEST, "the sha256 of every file above"))
    if signed:
        contents.append((SIGNATURE, "an HMAC-SHA256 of the manifest under SHIPRAIL_AUDIT_KEY"))
    text = [
        f"# Release package: {record.service} {record.version}",
        md.facts(record, [("Exported", f"{h.when(now)} UTC by shiprail {__version__}")]),
    ]
    if broken is not None:
        text.append(
            f"**Warning: this package was exported from a broken audit chain** ({md.text(broken.detail)}), with "
            "`--broken-chain`, for an investigation: its events cannot be trusted, and `shiprail release "
            "verify-package` never passes it."
        )
    text += [
        f"**{out.headline[0].upper() + out.headline[1:]}.** {md.text(out.detail)}",
        "## What changed\n\n"
        + (md.text(r.summary) or "_No summary._")
        + ("\n\n" + "\n".join(f"- {md.text(c)}" for c in changes) if changes else ""),
        "## The rollout at a glance\n\n"
        + md.table(["step", "entered (UTC)", "ran for", "result"], glance)
        + "\n\nTraffic on the new version: "
        + h.exposure_text(h.exposure(record))
        + ".",
    ]
    if record.overrides:
        pms = ", ".join(f"#{p['id']} {p['status']}" for p in record.postmortems)
        text.append(
            f"**{h.plural(len(record.overrides), 'gate override')}**"
            + (f" (post-mortems: {pms})" if pms else "")
            + "; see [gates.md](gates.md)."
        )
    if not record.ended:
        text.append("The release had not ended when this package was written, so it holds no retrospective.")
    text += [
        "## Contents\n\n" + md.table(["file", "what it holds"], contents),
        "## Checking this package\n\n"
        "```console\n"
        "$ sha256sum -c MANIFEST.sha256                # no file changed since export\n"
        "$ shiprail release verify-package .           # and the audit events' hashes and links\n"
        "$ shiprail release verify-package . --against-store   # and against the live audit chain\n"
        "```\n\n"
        f"The package holds the release's {len(record.events)} audit events (seq "
        f"{record.events[0].seq if record.events else '–'} to {record.events[-1].seq if record.events else '–'}); "
        f"the chain's head at export was seq {record.head_seq}. See [audit.md](audit.md).",
    ]
    return "\n\n".join(text) + "\n"


# ------------------------------------------------------------------------------------ writing


def build(
    record: ReleaseRecord,
    retrospective: str | None,
    retro_meta: dict[str, Any] | None,
    now: datetime,
    key: str | None = None,
    broken: audit.Finding | None = None,
) -> dict[str, bytes]:
    """Every file of the package, by relative path (pure: the record, the retrospective, ``now``, ``key``,
    and where the chain was broken when it is exported anyway)."""
    files: dict[str, bytes] = {
        "plan.md": plan_md(record).encode("utf-8"),
        "plan.yaml": record.plan_text.encode("utf-8"),
        # As stored, so its canonical JSON's hash is the release's resolved_hash (verify-package checks it).
        "plan.resolved.json": _json(json.loads(record.resolved_text or record.resolved.model_dump_json())),
        "rollout.md": rollout_md(record).encode("utf-8"),
        "rollout.json": _json(rollout_json(record)),
        "gates.md": gates_md(record).encode("utf-8"),
        "gates.json": _json(gates_json(record)),
        "verify.md": verify_md(record).encode("utf-8"),
        "verify.json": _json(verify_json(record)),
        "audit.md": audit_md(record).encode("utf-8"),
        EVENTS: "".join(
            json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for e in record.events
        ).encode("utf-8"),
        CHAIN: _json(
            {"release_id": record.id, "exported_at": now.isoformat(), "hash_rule": HASH_RULE} | _audit_summary(record)
        ),
    }
    if record.rollbacks:
        files["rollback.md"] = rollback_md(record).encode("utf-8")
        files["rollback.json"] = _json({"rollbacks": record.rollbacks, "decided_at": h.rollback_places(record)})
    if retrospective is not None:
        files["retrospective.md"] = retrospective.encode("utf-8")
    names = [*files, "release.json"]
    files["release.json"] = _json(release_json(record, now, names, retro_meta, broken))
    files["README.md"] = index_md(record, now, names, key is not None, broken).encode("utf-8")
    manifest = manifest_text(files)
    files[MANIFEST] = manifest
    if key is not None:
        files[SIGNATURE] = (
            json.dumps(
                {"algorithm": "HMAC-SHA256", "of": MANIFEST, "key": "SHIPRAIL_AUDIT_KEY", "hmac": sign(manifest, key)}
            )
            + "\n"
        ).encode("utf-8")
    return files


def write_package(
    store: Store,
    now: datetime,
    release_id: str,
    out: Path,
    key: str | None = None,
    actor: str = EXPORTER,
    *,
    broken_chain: bool = False,
) -> Written:
    """Write the package of ``release_id`` into ``out`` (a new or empty directory).

    A release that ended before retrospectives existed gets its retrospective generated here.
    Once the files are written, a ``package.exported`` event (by ``actor``) records the manifest's
    SHA-256 and the chain head the package holds: anyone can recompute a manifest, so checked
    against the chain, a package must be one the store exported, file for file.

    The whole chain is verified first: from a broken one, ``AuditChainBroken`` and nothing is written
    or recorded (a package whose own events check would look fine to an auditor), unless
    ``broken_chain`` asks for it anyway (an investigation): the package then says where the chain
    is broken, and ``verify-package`` never passes it.
    """
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; name a new or empty directory")
    if out.exists() and any(out.iterdir()):
        raise BadInput(f"--out {out} is not an empty directory; name a new one")
    with store.snapshot() as s:
        if s.get(Release, release_id) is None:
            load_record(s, release_id)  # the unknown release's own error, before the chain's
        head_seq, head_hash = audit.head(s)
        broken = audit.verify(audit.rows(s), head_seq=head_seq, head_hash=head_hash).finding
    if broken is not None and not broken_chain:
        raise AuditChainBroken(
            f"the audit chain is broken at seq {broken.seq}: {broken.detail}; nothing was exported: run "
            "`shiprail audit verify` to see it, or export with --broken-chain to investigate (the package is then "
            "marked as exported from a broken chain)",
            broken.seq,
        )
    with store.transaction() as s:
        release = s.get(Release, release_id)
        if release is not None and release.status in retro.ENDED:
            # Generated here for a release that ended before retrospectives existed (and its
            # event then belongs in the package, read below).
            retro.ensure(s, release_id, now)
    # One snapshot: the release's events, the chain head and the other records as of one moment,
    # so an event appended meanwhile is neither past the head nor missing below it.
    with store.snapshot() as s:
        record = load_record(s, release_id)
        retrospective = meta = None
        row = s.get(Retrospective, release_id) if record.ended else None
        if row is not None:
            retrospective, meta = row.body, {k: v for k, v in retro.retro_json(row).items() if k != "body"}
    files = build(record, retrospective, meta, now, key, broken)
    created = _write_whole(out, files)
    try:
        with store.transaction() as s:
            audit.append(
                s,
                at=now,
                actor=actor,
                kind=h.EXPORTED,
                release_id=record.id,
                payload={
                    "manifest_sha256": hashlib.sha256(files[MANIFEST]).hexdigest(),
                    "head_seq": record.head_seq,
                    "events": len(record.events),
                    "signed": key is not None,
                }
                | ({"chain_broken_at": broken.seq} if broken is not None else {}),
            )
    except BaseException:
        # A package the chain does not record would fail `verify-package --against-store`.
        _clear(out, created)
        raise
    return Written(out, record.id, sorted(files), len(record.events), key is not None, broken)


def _write_whole(out: Path, files: Mapping[str, bytes]) -> bool:
    """Write ``files`` into ``out`` (new or empty) whole or not at all; True when ``out`` was created here.

    They go into a hidden directory inside ``out`` first and are moved up once every file is
    written (renames, which a full disk does not stop): a failed write leaves ``out`` as it was
    (removed again when it was created here), never a package without its manifest. Staged inside
    rather than beside ``out``, so an empty ``out`` given ready-made (a mount point, a directory in
    a parent shiprail cannot write) works.
    """
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".partial-{secrets.token_hex(4)}"
        staging.mkdir()
    except (FileExistsError, NotADirectoryError):
        raise BadInput(f"--out {out} cannot be created: a part of that path is a file; name a new directory") from None
    except OSError as exc:
        raise BadInput(
            f"--out {out} cannot be created ({exc.strerror or exc}); name a directory shiprail can write"
        ) from None
    try:
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for child in list(staging.iterdir()):
            os.replace(child, out / child.name)
        staging.rmdir()
    except OSError as exc:
        _clear(out, created)
        raise ShiprailError(
            f"--out {out}: the package could not be written ({exc.strerror or exc}); nothing was left there"
        ) from None
    return created


def _clear(out: Path, created: bool) -> None:
    """Empty ``out`` again, and remove it when this export created it."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in list(out.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
