"""The retrospective: written by shiprail when a release ends, then finished by people.

When a transition records a terminal status (complete or rolled back), ``generate_if_ended`` runs
inside that same transaction and stores a Markdown retrospective built only from what the session
holds and the clock's now: the facts (timeline, gate results, overrides and post-mortems, the
rollback log, the metrics per step) followed by the questions of the retrospective guide
(``templates/retrospective.md`` that ``shiprail init`` writes), each with starting points taken
from the record.

People then edit the whole document (``shiprail release retro ID --edit`` or ``--file``): the
answers are part of the release's record, and nothing is lost by editing the facts, because the
release package regenerates them from the store. Every version is fingerprinted in the audit
trail (``retro.generated``, ``retro.edited`` with the SHA-256 of the body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from sqlalchemy.orm import Session

from shiprail.errors import BadInput, IllegalTransition, NotFound
from shiprail.export import history as h
from shiprail.export import markdown as md
from shiprail.export.record import ReleaseRecord, load_record
from shiprail.schema.resolved import sha256_hex
from shiprail.store import audit
from shiprail.store.models import Release, Retrospective

GENERATOR = "shiprail:retro"
GUIDE = "templates/project/templates/retrospective.md"
ENDED = ("complete", "rolled_back")
# A step that ran this many times its planned bake is worth a question.
SLOW_STEP_FACTOR = 1.5


# ------------------------------------------------------------------------------------ the guide


@dataclass(frozen=True)
class Question:
    """One question of the retrospective guide, with its guidance and any table to fill in."""

    title: str
    guidance: str
    table: str


# The questions when the guide cannot be read or parsed (kept in step with the guide).
FALLBACK = (
    Question("What went well?", "", ""),
    Question(
        "What surprised us?",
        "Anything the plan, the contract or the gates did not expect: a metric that moved, a trigger that fired "
        "(or should have), a check that passed but should not have, a step that took longer.",
        "",
    ),
    Question(
        "What should change in the process?",
        "The policy, the service's defaults, the contract's thresholds and windows, the checklists, the "
        "communication plan, the on-call handover.",
        "",
    ),
    Question(
        "Action items",
        "Each with one owner and a date. Link the pull request or ticket once it exists.",
        "| action | owner | due | link |\n| --- | --- | --- | --- |\n| | | | |",
    ),
)


def parse_questions(guide: str) -> tuple[Question, ...]:
    """The ``### `` questions under ``## Questions`` of a guide, each with its guidance and table."""
    match = re.search(r"^## Questions\s*$(.*?)(?=^## |\Z)", guide, re.M | re.S)
    if match is None:
        return ()
    out = []
    for block in re.split(r"^### ", match.group(1), flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        prose, rows = [], []
        for line in body.splitlines():
            stripped = line.strip()
            if stripped.startswith("|"):
                rows.append(stripped)
            elif stripped and stripped != "-":
                prose.append(stripped)
        out.append(Question(title.strip(), " ".join(prose), "\n".join(rows)))
    return tuple(out)


@cache
def guide_questions() -> tuple[Question, ...]:
    """The questions of the guide shipped with shiprail (``templates/retrospective.md``)."""
    try:
        text = resources.files("shiprail").joinpath(GUIDE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # pragma: no cover - the guide ships with the package
        return FALLBACK
    return parse_questions(text) or FALLBACK


# ------------------------------------------------------------------------------------ starting points


def _went_well(record: ReleaseRecord) -> list[str]:
    out = []
    first_try = [s for s in h.gate_summaries(record) if s.verdicts and s.verdicts[0] == "pass"]
    if first_try:
        out.append(f"{h.plural(len(first_try), 'gate check')} passed at the first attempt.")
    clean = [run for run in h.rollout_as_run(record) if run.reached and run.verdicts and set(run.verdicts) == {"pass"}]
    if clean:
        names = [h.step_name(r) for r in clean]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        out.append(f"Every analysis passed at {joined}.")
    for log in record.rollbacks:
        if log["cause"] != "manual" and log["weight_before"] and log["weight_before"] < 100:
            out.append(
                f"The contract caught the problem at {h.weight_text(log['weight_before'])} of traffic, "
                "before it reached everyone."
            )
        if log["max_duration_met"] and not h.by_hand(log):
            out.append(
                f"The revert was confirmed {h.span(log['detected_to_confirmed_s'])} after detection, within the "
                f"contract's {h.span(log['max_duration_s'])}."
            )
    return out


def _surprised(record: ReleaseRecord) -> list[str]:
    out = []
    for log in record.rollbacks:
        out.append(f"Rolled back: {log['reason'].rstrip('.')}.")
        hand = h.by_hand(log)
        if hand is not None:
            out.append(
                f"The router never confirmed the revert: {h.by_hand_text(hand)}, "
                f"{h.span(log['detected_to_confirmed_s'])} after detection."
            )
        if log["max_duration_met"] is False:
            out.append(
                f"The revert took {h.span(log['detected_to_confirmed_s'])}, longer than the contract's "
                f"{h.span(log['max_duration_s'])}."
            )
    for b in h.dry_run_breaches(record):
        said = h.dry_run_text(b).rstrip(".")
        out.append(f"{said[0].upper()}{said[1:]}.")
    for run in h.rollout_as_run(record):
        odd = {k: v for k, v in run.verdicts.items() if k != "pass" and v}
        if odd:
            out.append(f"Analyses at {h.step_name(run)}: {md.verdicts(run.verdicts)}.")
        if run.pauses:
            out.append(f"{h.step_name(run)} was paused {h.plural(run.pauses, 'time')}.".capitalize())
        planned = run.planned_bake_s
        if planned and run.seconds and run.result() == "promoted" and run.seconds > SLOW_STEP_FACTOR * planned:
            out.append(
                f"{h.step_name(run).capitalize()} ran {h.span(run.seconds)} against a planned bake of "
                f"{h.span(planned)}."
            )
    # Failed attempts: one per router.error (older records); a pass's outcome (router.failed, or
    # router.applied after failures) sums up its failed attempts in ``errors``.
    errors = 0
    for w in h.walk(record):
        if w.event.kind == "router.error":
            errors += 1
        elif w.event.kind in ("router.failed", "router.applied"):
            summed = sum(int(e.get("count", 0)) for e in w.payload.get("errors", []))
            errors += summed or (1 if w.event.kind == "router.failed" else 0)
    if errors:
        out.append(f"The router answered with errors {h.plural(errors, 'time')}.")
    return out


def _change(record: ReleaseRecord) -> list[str]:
    out = []
    why = {}
    for s in h.gate_summaries(record):
        if s.final == "overridden":
            why[s.gate] = s.reasons[-1]
    for o in record.overrides:
        failed = "; ".join(f"{g}: {why[g]}" for g in o["gates"] if g in why)
        out.append(
            f"Override #{o['id']} by {o['by']} passed {', '.join(o['gates'])} to {o['action']}"
            + (f" ({failed})" if failed else "")
            + "."
        )
    for s in h.gate_summaries(record):
        failure = s.first_failure()
        if failure and s.final == "pass":
            out.append(
                f"Gate {s.gate} ({s.action}, {s.place}) failed {h.plural(s.verdicts.count('fail'), 'time')} "
                f"first: {failure}."
            )
    open_pms = [p for p in record.postmortems if p["status"] == "open"]
    if open_pms:
        out.append(
            f"{h.plural(len(open_pms), 'post-mortem')} still open (#{', #'.join(str(p['id']) for p in open_pms)}); "
            "an open post-mortem blocks the next override on the service."
        )
    return out


STARTERS = {
    "What went well?": _went_well,
    "What surprised us?": _surprised,
    "What should change in the process?": _change,
}


def _question(q: Question, record: ReleaseRecord) -> str:
    parts = [f"### {q.title}"]
    if q.guidance:
        parts.append(f"<!-- {q.guidance} -->")
    starter = STARTERS.get(q.title)
    points = starter(record) if starter else []
    if points:
        parts.append("From the record (keep, answer or replace):\n\n" + "\n".join(f"- {md.text(p)}" for p in points))
    if q.table:
        parts.append(q.table)
    else:
        parts.append("_Not answered yet._")
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------ rendering


def render_retrospective(record: ReleaseRecord, now: datetime) -> str:
    """The generated retrospective of ``record`` as Markdown (pure: the record and ``now`` only)."""
    out = h.outcome(record)
    header = md.facts(record, [("Written by", f"generated by shiprail at {h.when(now)} UTC; add your names")])
    sections = [
        f"# Retrospective: {record.service} {record.version}",
        "<!-- Generated by shiprail when the release ended. Edit all of it: "
        f"`shiprail release retro {record.id} --edit` (or --file FILE). Write the facts first, then answer the "
        "questions; blame the process, never the person. The release package (`shiprail release export`) "
        "regenerates the facts from the store, so nothing is lost by editing them here. -->",
        header,
        md.text(out.detail),
        "## Timeline\n\nFrom the audit trail (`shiprail audit export --release "
        f"{record.id}`); runs of analyses with the same verdict are folded into one line. Add what happened "
        "outside shiprail (deploys, incidents, messages).\n\n" + md.timeline_section(record),
        "## Gate results\n\n" + md.gates_section(record),
        "## Overrides and post-mortems\n\n"
        + md.overrides_section(record)
        + ("\n\nWas each override justified by what happened afterwards?" if record.overrides else ""),
        "## Rollback log\n\n"
        + md.rollback_section(record)
        + ("" if record.rollbacks else " Note any trigger that came close.")
        + (f"\n\n### Dry runs\n\n{dry}" if (dry := md.dry_run_section(record)) else ""),
        "## Metrics per step\n\nThe rollout as planned and as run:\n\n"
        + md.rollout_section(record)
        + "\n\nThe last analysis of each step, trigger by trigger:\n\n"
        + md.metrics_section(record),
        "## Questions",
        *(_question(q, record) for q in guide_questions()),
    ]
    return "\n\n".join(sections) + "\n"


# ------------------------------------------------------------------------------------ storing


def body_hash(body: str) -> str:
    """The fingerprint the audit trail keeps of a retrospective's text."""
    return sha256_hex(body)


def generate_if_ended(session: Session, release_id: str, now: datetime) -> Retrospective | None:
    """Store the retrospective of a release that has just ended (the hook of ``Releases``).

    Runs in the caller's transaction; does nothing while the release runs or once a retrospective
    exists.
    """
    release = session.get(Release, release_id)
    if release is None or release.status not in ENDED or session.get(Retrospective, release_id) is not None:
        return None
    body = render_retrospective(load_record(session, release_id), now)
    row = Retrospective(release_id=release_id, body=body, generated_at=now, updated_at=now, updated_by=GENERATOR)
    session.add(row)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=GENERATOR,
        kind="retro.generated",
        release_id=release_id,
        payload={"sha256": body_hash(body), "bytes": len(body.encode("utf-8"))},
    )
    return row


def ensure(session: Session, release_id: str, now: datetime) -> Retrospective:
    """The release's retrospective; generated now for a release that ended before retrospectives existed.

    ``NotFound`` for an unknown release; ``IllegalTransition`` while it has not ended.
    """
    # Locked: two first readers of an old release must not both generate it.
    release = session.get(Release, release_id, with_for_update=True)
    if release is None:
        raise NotFound(f"no release {release_id!r}; `shiprail release list` shows them")
    row = session.get(Retrospective, release_id)
    if row is not None:
        return row
    if release.status not in ENDED:
        raise IllegalTransition(
            f"release {release_id} is {release.status}; its retrospective is written when it ends (complete or "
            "rolled back)"
        )
    made = generate_if_ended(session, release_id, now)
    assert made is not None
    return made


def save(session: Session, release_id: str, body: str, actor: str, now: datetime) -> tuple[Retrospective, bool]:
    """Store an edited retrospective; False (nothing stored) when the text is unchanged."""
    if not body.strip():
        raise BadInput("the retrospective is empty; nothing was stored")
    row = ensure(session, release_id, now)
    if body == row.body:
        return row, False
    previous = body_hash(row.body)
    row.body, row.updated_at, row.updated_by = body, now, actor
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        kind="retro.edited",
        release_id=release_id,
        payload={"sha256": body_hash(body), "previous_sha256": previous, "bytes": len(body.encode("utf-8"))},
    )
    return row, True


def retro_json(row: Retrospective) -> dict[str, object]:
    """A stored retrospective for ``--json``."""
    return {
        "release_id": row.release_id,
        "generated_at": row.generated_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "updated_by": row.updated_by,
        "sha256": body_hash(row.body),
        "body": row.body,
    }
