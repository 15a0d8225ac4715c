"""Flag router: published rollout configs, the SDKs in contact, histogram buckets in pushed signals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag_configs",
        sa.Column("service", sa.String(length=120), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.String(length=80), nullable=True),
        sa.Column("stable", sa.String(length=120), nullable=True),
        sa.Column("canary", sa.String(length=120), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("salt", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_flag_configs")),
    )
    op.create_table(
        "flag_clients",
        sa.Column("service", sa.String(length=120), nullable=False),
        sa.Column("client", sa.String(length=120), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service", "client", name=op.f("pk_flag_clients")),
    )
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("le", sa.Float(), nullable=True))
    with op.batch_alter_table("rollback_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmation", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollback_logs", schema=None) as batch_op:
        batch_op.drop_column("confirmation")
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_column("le")
    op.drop_table("flag_clients")
    op.drop_table("flag_configs")
