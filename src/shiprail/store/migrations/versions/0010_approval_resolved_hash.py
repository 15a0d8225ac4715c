"""Approvals of the resolved release, not only of the plan file.

An approval recorded only the plan file's hash, so ``release update`` with the same plan file but
an edited service file or shiprail.yaml (other stages, tests, bakes, metric queries, approvals
required) kept every approval of a release that no longer runs as approved. Each approval now
records ``resolved_hash``, the hash of the resolved release it approved
(``shiprail.schema.resolved.resolved_hash``), and counts only while the release still resolves to
that; one person may approve each resolved release once (the unique key moves from the plan hash to
it).

Approvals stored before this revision are kept, and given the release's resolved hash when they
are known to be of the release as it is now:

- of a release that has entered Stage (its plan cannot change any more), the approvals of its plan
  hash: those its Stage gate counted;
- of a release still ``planned``, an approval of its current plan hash whose ``release.approved``
  audit event comes after every ``plan.updated`` event of the release: nothing was replaced since.

Any other approval (of a planned release whose plan was replaced after it: the audit trail does not
record whether the service file or policy changed then) keeps a NULL ``resolved_hash`` and no longer
counts; it must be given again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 13:30:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from shiprail.schema.resolved import resolved_hash

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("resolved_hash", sa.String(64), nullable=True))
    _backfill(op.get_bind())
    with op.batch_alter_table("approvals") as batch:
        batch.drop_constraint("uq_approvals_release_id", type_="unique")
        batch.create_unique_constraint("uq_approvals_release_id", ["release_id", "principal", "resolved_hash"])


def _backfill(conn: sa.Connection) -> None:
    approvals = conn.execute(sa.text("SELECT id, release_id, principal, plan_hash FROM approvals ORDER BY id")).all()
    if not approvals:
        return
    releases = {
        rid: (plan_hash, resolved, frozen_at)
        for rid, plan_hash, resolved, frozen_at in conn.execute(
            sa.text("SELECT id, plan_hash, resolved, frozen_at FROM releases")
        )
    }
    approved: dict[tuple[str, str, str], int] = {}
    replaced: dict[str, int] = {}
    events = conn.execute(
        sa.text(
            "SELECT seq, release_id, kind, actor, payload FROM audit_events "
            "WHERE kind IN ('release.approved', 'plan.updated') ORDER BY seq"
        )
    )
    for seq, rid, kind, actor, payload in events:
        if kind == "plan.updated":
            replaced[rid] = seq
        else:
            approved.setdefault((rid, actor, str(json.loads(payload).get("plan_hash"))), seq)
    for aid, rid, principal, plan_hash in approvals:
        plan, resolved, frozen_at = releases[rid]
        if plan_hash != plan:
            continue  # of an earlier plan: it did not count before either
        if frozen_at is None:
            at = approved.get((rid, principal, plan_hash))
            if at is None or at < replaced.get(rid, -1):
                continue
        conn.execute(
            sa.text("UPDATE approvals SET resolved_hash = :h WHERE id = :id"), {"h": resolved_hash(resolved), "id": aid}
        )


def downgrade() -> None:
    # The older key is one approval per person and plan hash: keep each person's latest.
    op.execute(
        "DELETE FROM approvals WHERE id NOT IN "
        "(SELECT keep FROM (SELECT MAX(id) AS keep FROM approvals GROUP BY release_id, principal, plan_hash) AS k)"
    )
    with op.batch_alter_table("approvals") as batch:
        batch.drop_constraint("uq_approvals_release_id", type_="unique")
        batch.create_unique_constraint("uq_approvals_release_id", ["release_id", "principal", "plan_hash"])
        batch.drop_column("resolved_hash")
