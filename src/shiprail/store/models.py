"""The tables. Migrations in ``shiprail/store/migrations`` create exactly these (a test checks)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shiprail.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Release(Base):
    """One release of one plan; its lifecycle state and the resolved plan it runs."""

    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    service: Mapped[str] = mapped_column(String(120), index=True)
    version: Mapped[str] = mapped_column(String(120))
    baseline: Mapped[str] = mapped_column(String(120))
    owner: Mapped[str] = mapped_column(String(120))
    risk: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), index=True)
    step: Mapped[int | None] = mapped_column(Integer)
    paused_from: Mapped[str | None] = mapped_column(String(20))
    plan_file: Mapped[str] = mapped_column(Text)
    plan_text: Mapped[str] = mapped_column(Text)
    resolved: Mapped[str] = mapped_column(Text)
    plan_hash: Mapped[str] = mapped_column(String(64))
    contract_hash: Mapped[str] = mapped_column(String(64))
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state_since: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revision: Mapped[int] = mapped_column(Integer, default=0)


class Approval(Base):
    """One person's approval of one resolved release: the plan with its service file and policy, as it will run.

    ``resolved_hash`` is NULL only for an approval stored before migration 0010 that cannot be
    told to be of the release as it is now (its plan was replaced after it); such an approval
    never counts.
    """

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("release_id", "principal", "resolved_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    principal: Mapped[str] = mapped_column(String(120))
    plan_hash: Mapped[str] = mapped_column(String(64))
    resolved_hash: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Signoff(Base):
    """A QA checklist item signed off."""

    __tablename__ = "signoffs"
    __table_args__ = (UniqueConstraint("release_id", "item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    item: Mapped[str] = mapped_column(Text)
    principal: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class CheckRun(Base):
    """A recorded run of a stage check (test command, load test) and its evidence."""

    __tablename__ = "check_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    passed: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class GateEvaluation(Base):
    """One gate's verdict on one attempted transition, with its evidence."""

    __tablename__ = "gate_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    gate: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Override(Base):
    """Failed gates passed anyway by an executive, with the reason written down."""

    __tablename__ = "overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    gates: Mapped[str] = mapped_column(Text)
    # What refused each gate it passed (``shiprail.domain.refusals``), JSON: gate -> what refused
    # it; a gate told by its name alone is left out. NULL: stored before refusals were told apart.
    refused_by: Mapped[str | None] = mapped_column(Text)
    principal: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Postmortem(Base):
    """Opened by every override; ``open`` until someone writes it up and closes it."""

    __tablename__ = "postmortems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    service: Mapped[str] = mapped_column(String(120), index=True)
    override_id: Mapped[int] = mapped_column(ForeignKey("overrides.id"))
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(120))
    summary: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """One link of the audit chain. The database refuses UPDATE and DELETE on this table."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_audit_events_release_id", AuditEvent.release_id)


class AuditHead(Base):
    """The chain's last seq and hash; appends lock this row, so the chain has one writer at a time."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Rollout(Base):
    """The controller's progress through a release's rollout (``shiprail.domain.rollout.Progress``)."""

    __tablename__ = "rollouts"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    progress: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RouterIntent(Base):
    """A weight the controller set out to apply: written before the router is called, closed after.

    A restart that finds one still ``pending`` reads the router back before calling it again, so a
    weight is never applied twice.
    """

    __tablename__ = "router_intents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    weight: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Analysis(Base):
    """One evaluation of the rollback contract: every trigger's verdict and what it was judged on."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20))
    step: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))
    results: Mapped[str] = mapped_column(Text)


# A release's newest analysis is one index entry, not a sort of all of them (migration 0012).
Index("ix_analyses_release_id_id", Analysis.release_id, Analysis.id)


class RollbackLog(Base):
    """What fired, when it was seen and decided, and how long the revert took."""

    __tablename__ = "rollback_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    cause: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    initiated_by: Mapped[str] = mapped_column(String(120))
    weight_before: Mapped[float | None] = mapped_column(Float)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revert_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revert_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    max_duration_s: Mapped[float | None] = mapped_column(Float)
    met: Mapped[bool | None] = mapped_column(Boolean)
    metrics_after: Mapped[str] = mapped_column(Text, default="[]")
    # What the router could say about the revert beyond its read-back (JSON; the flag router: which
    # SDKs acknowledged the new revision), or None.
    confirmation: Mapped[str | None] = mapped_column(Text, nullable=True)


class SignalEvent(Base):
    """A count pushed to shiprail: a complaint, an alert, or a metric counter for one version."""

    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(120))
    version: Mapped[str | None] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    # A latency histogram bucket's upper bound (seconds; +inf for the last); None for plain counts.
    le: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The sender's key for this signal: a retry with the same key is the same signal, stored once.
    idempotency_key: Mapped[str | None] = mapped_column(String(120), nullable=True)


Index("ix_signals_service_name_at", SignalEvent.service, SignalEvent.name, SignalEvent.at)
Index("ux_signals_service_key", SignalEvent.service, SignalEvent.idempotency_key, unique=True)


class Lease(Base):
    """Which controller drives a release right now; it renews the lease while it lives."""

    __tablename__ = "leases"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    calls_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """While set and ahead: a router call of the holder may still land; nobody takes the lease over."""


class ControllerPresence(Base):
    """A running controller, renewed every pass: how many share the releases (scaled mode)."""

    __tablename__ = "controllers"

    holder: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FlagConfig(Base):
    """The rollout config the ``flag`` router publishes for one service and its SDKs fetch."""

    __tablename__ = "flag_configs"

    service: Mapped[str] = mapped_column(String(120), primary_key=True)
    # Raised by one on every change; SDKs send it back (ETag) and so acknowledge what they apply.
    revision: Mapped[int] = mapped_column(Integer)
    release_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    stable: Mapped[str | None] = mapped_column(String(120), nullable=True)
    canary: Mapped[str | None] = mapped_column(String(120), nullable=True)
    weight: Mapped[float] = mapped_column(Float)
    salt: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FlagClient(Base):
    """One SDK instance in contact with shiprail: the revision it last said it applies, and when."""

    __tablename__ = "flag_clients"

    service: Mapped[str] = mapped_column(String(120), primary_key=True)
    client: Mapped[str] = mapped_column(String(120), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One notification of one release event to one channel: its attempts and outcome.

    Written by the notifier (outside the controller's path) for each communication-plan match of
    an audit event; ``status`` is ``pending`` until ``sent``, or ``failed`` after the last attempt.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    event_seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(40))
    audience: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The email recipients that have the message (a JSON list): an attempt that some recipients
    # refused still reached the others, and the retry goes only to those not in this list.
    delivered_to: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


Index("ux_deliveries_event_channel", Delivery.event_seq, Delivery.audience, Delivery.channel, unique=True)
# The notifier's poll: pending deliveries whose next_at has passed, oldest first (migration 0005).
Index("ix_deliveries_due", Delivery.status, Delivery.next_at)


class Cursor(Base):
    """How far a background reader (the notifier) has read the audit chain."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class Retrospective(Base):
    """A release's retrospective: generated when it ends, then edited by people."""

    __tablename__ = "retrospectives"

    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(120))
