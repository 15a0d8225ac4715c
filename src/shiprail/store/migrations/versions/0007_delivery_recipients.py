"""The email recipients a delivery has reached, so a partly refused email is retried only to the rest.

An SMTP server may take a message for some recipients and refuse others (``550 no such user``, a
``451`` greylisting). The attempt then counts as failed, and its retry must not send the message
again to those who already have it: ``delivered_to`` (a JSON list) keeps who they are. Existing
rows start with none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("delivered_to", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("delivered_to")
