"""The read-only role operations.md gives the audit cron jobs (``shiprail_reader``), on real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail.store import audit
from shiprail.store.db import Store
from tests.support.stores import pg_role


def _documented_reader_grants() -> list[str]:
    """The GRANT statements operations.md has the owner run for ``shiprail_reader``."""
    text = (Path(__file__).parents[3] / "docs" / "operations.md").read_text(encoding="utf-8")
    block = text.split("and, as `shiprail_owner`, what `audit anchor`", 1)[1].split("```sql", 1)[1]
    sql = re.sub(r"--[^\n]*", "", block.split("```", 1)[0])
    return [" ".join(s.split()).replace("shiprail_reader", "{role}") for s in sql.split(";") if s.strip()]


def test_the_documented_reader_role_anchors_verifies_and_exports_the_chain(
    shiprail: Any, pg_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The anchoring cron job runs as 'a database role that may only read', which the page named
    (shiprail_reader) but never said how to set up."""
    with pg_store.transaction() as s:
        for n in range(3):
            audit.append(
                s, at=datetime(2026, 3, 1, 12, n, tzinfo=UTC), actor="alice", kind="x", release_id=None, payload={}
            )
    monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", "k" * 32)
    log = tmp_path / "anchors.jsonl"
    with pg_role(pg_store, _documented_reader_grants()) as (role, schema):
        url = f"{sa.make_url(pg_store.url).set(username=role).render_as_string()}?options=-csearch_path%3D{schema}"
        r = shiprail("audit", "anchor", "--to", str(log), "--db", url)
        assert (r.code, r.err) == (0, ""), r.err
        assert r.out.startswith("anchored seq 3 (hash ")
        r = shiprail("audit", "verify", "--anchors", str(log), "--max-anchor-age", "1h", "--db", url)
        assert (r.code, r.err) == (0, ""), r.err
        r = shiprail(
            "audit", "export", "--out", str(tmp_path / "a.jsonl"), "--checkpoint", str(tmp_path / "c.json"), "--db", url
        )
        assert (r.code, r.err) == (0, ""), r.err
        with pg_store.engine.connect() as conn:  # it may read, never write
            writes = conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.role_table_grants "
                    "WHERE grantee = :role AND privilege_type <> 'SELECT'"
                ),
                {"role": role},
            ).scalar_one()
        assert writes == 0
