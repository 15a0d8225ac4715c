"""What refused each gate an override passed.

An override matched the gates it passed by name only, so one meant for a freeze named
``maintenance`` also passed one named ``black-friday`` begun since, and one meant for a person on
call who may not be also passed another such person after a handover. An override now covers the
refusal its author saw (``shiprail.domain.refusals``) and records what refused each gate it passed:
``refused_by``, JSON (gate -> what refused it).

Overrides stored before this revision keep a NULL ``refused_by``: they passed their gates by name,
and are read as such.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("overrides", sa.Column("refused_by", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("overrides") as batch:
        batch.drop_column("refused_by")
