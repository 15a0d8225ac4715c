"""Release notes: the body of a GitHub or GitLab release, from the release's record.

Markdown both render the same way: a summary, the changes, the risk and its contract, the rollout
as it ran, and the outcome. No links: the notes must read the same wherever they are pasted.
"""

from __future__ import annotations

from shiprail import __version__
from shiprail.export import history as h
from shiprail.export import markdown as md
from shiprail.export.record import ReleaseRecord


def render_notes(record: ReleaseRecord) -> str:
    """The release notes of ``record`` as Markdown (pure)."""
    r = record.resolved
    out = h.outcome(record)
    changes = record.changes()
    facing = record.user_facing()
    mark = {"complete": "✅", "rolled_back": "↩️"}.get(record.status, "⏳")
    parts = [
        f"## {record.service} {record.version}",
        f"{mark} **{out.headline[0].upper() + out.headline[1:]}.** {md.text(r.summary)}".rstrip(),
        "### Changes\n\n"
        + ("\n".join(f"- {md.text(c)}" for c in changes) if changes else f"- {md.text(r.summary) or 'Not listed.'}"),
    ]
    risk = [
        f"**{record.risk.capitalize()} risk** ({r.risk_reason}); "
        + ("user-facing" if facing else "backend only" if facing is False else "user impact not stated")
        + (f"; tags: {', '.join(r.tags)}" if r.tags else "")
        + ".",
        "Rolled back automatically when any of these fires:\n\n" + md.contract_section(record),
    ]
    if record.overrides:
        risk.append(
            "Gates passed by override: "
            + "; ".join(
                f"{md.text(h.override_gates(o['gates'], o.get('refused_by')))} ({o['action']}) by {o['by']}: "
                f"{md.text(o['reason'])}"
                for o in record.overrides
            )
            + "."
        )
    parts.append("### Risk\n\n" + "\n\n".join(risk))
    rows = []
    for run in h.rollout_as_run(record):
        planned = h.span(run.planned_bake_s) + (" window" if run.slot == h.VERIFY else "")
        if not run.reached:
            rows.append((h.step_name(run), planned, "–", "not reached"))
            continue
        ran = (
            f"{h.when(run.entered_at)} (for {h.span(run.seconds)})"
            if run.left_at
            else f"since {h.when(run.entered_at)}"
        )
        rows.append((h.step_name(run), planned, ran, run.result()))
    parts.append(
        "### Rollout\n\n"
        + md.table(["step", "planned", "ran (UTC)", "result"], rows)
        + "\n\nTraffic on the new version: "
        + h.exposure_text(h.exposure(record))
        + "."
    )
    outcome = [md.text(out.detail)]
    v = h.verify_report(record)
    if v.reached and record.status == "complete":
        probes = (
            "; probes: " + ", ".join(f"{p.name} passed in {p.passed} of {p.analyses} analyses" for p in v.probes)
            if v.probes
            else ""
        )
        outcome.append(f"Verified for {h.span(v.planned_s)} with {v.on_call} on call{probes}.")
    parts.append("### Outcome\n\n" + " ".join(outcome))
    parts.append(
        f"<sub>Release {md.code(record.id)} · {record.baseline} → {record.version} · owner {record.owner} · "
        f"plan {md.code(record.plan_hash[:12])} · contract {md.code(record.contract_hash[:12])} · "
        f"shiprail {__version__}</sub>"
    )
    return "\n\n".join(parts) + "\n"
