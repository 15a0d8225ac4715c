"""A lease's call fence: until when a router call of its holder may still land.

A controller killed while its router call runs (a command router's script, which runs in a
process group of its own) can leave that call running; it lands whenever it ends. The holder marks
the lease before each router call with the call's deadline (its timeout and a margin), and clears
it after; nobody takes a lease over while its mark lies ahead (``shiprail.controller.leases``).
Existing rows start unmarked.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("calls_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("calls_until")
