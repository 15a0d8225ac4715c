"""Controller state: rollout progress, router intents, analyses, rollback logs, pushed signals, leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:20:00.974152
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "signals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(length=120), nullable=False),
        sa.Column("version", sa.String(length=120), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.create_index("ix_signals_service_name_at", ["service", "name", "at"], unique=False)

    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("release_id", sa.String(length=80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_analyses_release_id_releases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
    )
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analyses_release_id"), ["release_id"], unique=False)

    op.create_table(
        "leases",
        sa.Column("release_id", sa.String(length=80), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_leases_release_id_releases")),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_leases")),
    )
    op.create_table(
        "rollback_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("release_id", sa.String(length=80), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("initiated_by", sa.String(length=120), nullable=False),
        sa.Column("weight_before", sa.Float(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revert_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revert_confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_duration_s", sa.Float(), nullable=True),
        sa.Column("met", sa.Boolean(), nullable=True),
        sa.Column("metrics_after", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_rollback_logs_release_id_releases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollback_logs")),
    )
    with op.batch_alter_table("rollback_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollback_logs_release_id"), ["release_id"], unique=False)

    op.create_table(
        "rollouts",
        sa.Column("release_id", sa.String(length=80), nullable=False),
        sa.Column("progress", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_rollouts_release_id_releases")),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_rollouts")),
    )
    op.create_table(
        "router_intents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("release_id", sa.String(length=80), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_router_intents_release_id_releases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_router_intents")),
    )
    with op.batch_alter_table("router_intents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_router_intents_release_id"), ["release_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("router_intents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_router_intents_release_id"))

    op.drop_table("router_intents")
    op.drop_table("rollouts")
    with op.batch_alter_table("rollback_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollback_logs_release_id"))

    op.drop_table("rollback_logs")
    op.drop_table("leases")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analyses_release_id"))

    op.drop_table("analyses")
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_index("ix_signals_service_name_at")

    op.drop_table("signals")
