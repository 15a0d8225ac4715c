"""An index for the notifier's "what is due" query on deliveries.

The notifier asks, every poll, for pending deliveries whose ``next_at`` has passed, in ``next_at``
order (and for the earliest ``next_at`` among pending ones). Sent and failed deliveries pile up
with every release; without this index each poll reads them all.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 20:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
