"""An idempotency key on pushed signals, unique per service.

A client that retries a signal it is not sure was stored (a timeout, a lost answer) sends the same
key again and gets the signal already stored, instead of a second one: a contract trigger on
"more than 3 customer complaints" must not count one complaint twice. Signals without a key are
unaffected (NULLs never collide in a unique index, on SQLite or PostgreSQL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("signals", sa.Column("idempotency_key", sa.String(120), nullable=True))
    op.create_index("ux_signals_service_key", "signals", ["service", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_signals_service_key", table_name="signals")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("idempotency_key")
