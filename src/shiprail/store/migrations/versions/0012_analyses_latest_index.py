"""An index for "the newest analysis of a release" (and its analyses in order).

Release show, the status page, every promotion's analysis and probes gates and the controller's
``/metrics`` ask for a release's newest analysis, and the controller reads a release's analyses
in ``id`` order. With an index on ``release_id`` alone, PostgreSQL fetched and sorted all of a
release's analyses to find the newest (8,640 of them for a 24-hour Verify analysed every 10 s);
on ``(release_id, id)`` it reads one index entry. It replaces the index on ``release_id``, which
it covers.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 01:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses") as batch_op:
        batch_op.create_index("ix_analyses_release_id_id", ["release_id", "id"], unique=False)
        batch_op.drop_index("ix_analyses_release_id")


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch_op:
        batch_op.create_index("ix_analyses_release_id", ["release_id"], unique=False)
        batch_op.drop_index("ix_analyses_release_id_id")
