"""Reading and writing the controller's records: rollout progress, router intents, rollback logs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiprail import defaults
from shiprail.domain.rollout import Progress, progress_from_json, progress_to_json
from shiprail.judges.contract import Increment
from shiprail.schema.resolved import canonical_json
from shiprail.store.models import Analysis, AuditEvent, RollbackLog, Rollout, RouterIntent
from shiprail.store.rows import iso

# A dry-run trigger's first breach at a step (or in Verify): what it would have done, recorded once.
DRY_RUN_EVENT = "dry_run.breached"
# What a rollback's metrics read once traffic was back on the baseline: stated with its log's
# ``metrics_after`` by the controller that read them (``release verify-package`` compares them).
METRICS_AFTER_EVENT = "rollback.metrics_after"
# A router intent written by a controller whose call landed after it had lost the lease: the
# router may hold a weight nobody wants, so the lease's holder reads it back and puts it right.
STALE = "stale"


def load_progress(session: Session, release_id: str) -> Progress:
    """The release's rollout progress; a fresh ``Progress`` before the controller first touched it."""
    row = session.get(Rollout, release_id)
    return progress_from_json(json.loads(row.progress)) if row else Progress()


def lock_progress(session: Session, release_id: str) -> None:
    """Lock the release's rollout progress row (if it has one) for the rest of the transaction.

    The controller locks it before the audit chain's head (it saves the progress, then appends):
    a command that will save the progress after appending takes it first, in the same order,
    or the two transactions each hold what the other waits for (PostgreSQL: deadlock detected).
    """
    session.execute(select(Rollout.release_id).where(Rollout.release_id == release_id).with_for_update()).all()


def save_progress(session: Session, release_id: str, progress: Progress, at: datetime) -> Progress:
    """Store ``progress`` for the release (insert or replace); it as ``load_progress`` reads it back."""
    text = canonical_json(progress_to_json(progress))
    row = session.get(Rollout, release_id, with_for_update=True)
    if row is None:
        session.add(Rollout(release_id=release_id, progress=text, updated_at=at))
    else:
        row.progress, row.updated_at = text, at
    session.flush()
    return progress_from_json(json.loads(text))


def pending_intent(session: Session, release_id: str) -> RouterIntent | None:
    """The router intent the controller opened and has not closed (at most one per release)."""
    return (
        session.execute(
            select(RouterIntent)
            .where(RouterIntent.release_id == release_id, RouterIntent.status == "pending")
            .order_by(RouterIntent.id.desc())
        )
        .scalars()
        .first()
    )


def latest_intent(session: Session, release_id: str) -> RouterIntent | None:
    """The release's newest router intent, a stale controller's aside."""
    return session.execute(
        select(RouterIntent)
        .where(RouterIntent.release_id == release_id, RouterIntent.status != STALE)
        .order_by(RouterIntent.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def router_trouble(session: Session, release_id: str) -> dict[str, Any] | None:
    """The weight the router keeps failing to apply, if it does; None while the router keeps up.

    That is the release's latest intent when its last pass failed, or when it was opened again
    after one and is being retried: ``{weight, since, attempts, error}``, ``since`` when the
    controller first set out to apply it, ``error`` the last pass's.
    """
    intent = latest_intent(session, release_id)
    if intent is None or not (intent.status == "failed" or (intent.status == "pending" and intent.attempts > 0)):
        return None
    return {
        "weight": intent.weight,
        "since": intent.created_at.isoformat(),
        "attempts": intent.attempts,
        "error": intent.detail,
    }


def open_rollback(session: Session, release_id: str) -> RollbackLog | None:
    """The release's rollback log whose revert is not confirmed yet."""
    return (
        session.execute(
            select(RollbackLog)
            .where(RollbackLog.release_id == release_id, RollbackLog.revert_confirmed_at.is_(None))
            .order_by(RollbackLog.id.desc())
        )
        .scalars()
        .first()
    )


def revert_stuck_after(log: RollbackLog) -> float:
    """Seconds an unconfirmed revert takes to be stuck: ``defaults.REVERT_STUCK_SECONDS``, or the
    contract's revert.max_duration when shorter.

    Counted from the rollback's decision for the controller's announcement (``rollback.stuck``: how
    long the canary has kept traffic), and from the controller's first attempt (``revert_started_at``)
    for a confirmation by hand (``release override``): how long the router has had to confirm."""
    limit = defaults.REVERT_STUCK_SECONDS
    if log.max_duration_s is not None:
        limit = min(limit, float(log.max_duration_s))
    return limit


def latest_analysis(session: Session, release_id: str) -> Analysis | None:
    """The release's most recent contract analysis.

    Limited to one row in the query: without it the ORM read every analysis of the release (all of
    a 24-hour Verify's 8,640, their results included) to keep the first, 0.14 s at every ``/metrics``
    pass of the controller, promotion gate and release view.
    """
    query = select(Analysis).where(Analysis.release_id == release_id).order_by(Analysis.id.desc()).limit(1)
    return session.execute(query).scalar_one_or_none()


def regression_increments(
    session: Session, release_id: str, after: int | None = None
) -> tuple[dict[str, list[Increment]], int | None]:
    """The increments of the release's analyses stored after analysis ``after`` (all when None).

    Per regression trigger, oldest first, with the last analysis read (``after`` when there is
    none). An analysis is inserted while its release's row is locked, so a release's analyses
    are numbered in the order they were stored and none can appear later below ``after``.
    """
    out: dict[str, list[Increment]] = {}
    query = select(Analysis.id, Analysis.results).where(Analysis.release_id == release_id)
    if after is not None:
        query = query.where(Analysis.id > after)
    last = after
    for analysis_id, results in session.execute(query.order_by(Analysis.id)):
        last = analysis_id
        for row in json.loads(results):
            if "increment" in row:
                out.setdefault(row["trigger"], []).append(Increment.from_json(row["increment"]))
    return out, last


def rollback_json(log: RollbackLog) -> dict[str, Any]:
    """A rollback log as ``release show --json`` reports it."""
    took = (log.revert_confirmed_at - log.detected_at).total_seconds() if log.revert_confirmed_at is not None else None
    return {
        "id": log.id,
        "cause": log.cause,
        "trigger": log.trigger,
        "reason": log.reason,
        "value": log.value,
        "threshold": log.threshold,
        "initiated_by": log.initiated_by,
        "weight_before": log.weight_before,
        "detected_at": iso(log.detected_at),
        "decided_at": iso(log.decided_at),
        "revert_started_at": iso(log.revert_started_at),
        "revert_confirmed_at": iso(log.revert_confirmed_at),
        "detected_to_confirmed_s": None if took is None else round(took, 3),
        "max_duration_s": log.max_duration_s,
        "max_duration_met": log.met,
        "metrics_after": json.loads(log.metrics_after),
        "confirmation": None if log.confirmation is None else json.loads(log.confirmation),
    }


def analysis_json(row: Analysis) -> dict[str, Any]:
    """One analysis as reports show it."""
    return {
        "at": row.at.isoformat(),
        "status": row.status,
        "step": row.step,
        "weight": row.weight,
        "verdict": row.verdict,
        "results": json.loads(row.results),
    }


def dry_run_breaches(session: Session, release_id: str) -> list[dict[str, Any]]:
    """The release's dry-run breaches (``DRY_RUN_EVENT``), oldest first, each with its time ``at``."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.release_id == release_id, AuditEvent.kind == DRY_RUN_EVENT)
        .order_by(AuditEvent.seq)
    )
    out: list[dict[str, Any]] = []
    for row in session.execute(query).scalars():
        payload = json.loads(row.payload) if isinstance(row.payload, str) else dict(row.payload)
        out.append({"at": row.at.isoformat()} | payload)
    return out
