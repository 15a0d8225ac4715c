"""Running controllers, so that several share the releases instead of the first taking them all.

Each ``shiprail controller`` (and each serve with its controller) renews a row here every pass;
the rows not yet expired say how many controllers are alive, and each takes its fair share of the
active releases (``shiprail.controller.leases``). The table starts empty.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 10:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controllers",
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_controllers")),
    )


def downgrade() -> None:
    op.drop_table("controllers")
