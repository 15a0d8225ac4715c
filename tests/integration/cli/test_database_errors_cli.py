"""What a command says when PostgreSQL refuses it mid-command: one sentence, exit 1, no traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from shiprail import __version__
from shiprail.store.db import SCHEMA_HEAD, Store, alembic_config
from tests.support.stores import pg_role

HINT = (
    "grant the role shiprail connects as the privileges docs/operations.md lists "
    "(what this command recorded before stands)"
)


@pytest.fixture
def app_url(pg_store: Store) -> Iterator[str]:
    """A login role for ``pg_store``'s schema that may read ``alembic_version`` and nothing else: the URL."""
    with pg_role(pg_store, ["GRANT SELECT ON {schema}.alembic_version TO {role}"]) as (role, schema):
        url = sa.make_url(pg_store.url).set(username=role, password="app-secret")
        yield f"{url.render_as_string(hide_password=False)}?options=-csearch_path%3D{schema}"


def test_a_table_the_role_was_not_granted_is_one_sentence_not_a_traceback(shiprail: Any, app_url: str) -> None:
    r = shiprail("audit", "verify", "--db", app_url)
    assert (r.code, r.out) == (1, "")
    assert r.err == f"error: the database refused: permission denied for table audit_head; {HINT}\n"
    assert "app-secret" not in r.err
    r = shiprail("release", "list", "--db", app_url, "--json")
    assert (r.code, r.err) == (1, "")
    assert r.json() == {
        "ok": False,
        "error": f"the database refused: permission denied for table releases; {HINT}",
        "exit_code": 1,
    }
    assert "app-secret" not in json.dumps(r.json())


def test_an_older_store_the_role_may_not_migrate_says_it_needs_shiprail_migrate(shiprail: Any, pg_store: Store) -> None:
    """The app role after an upgrade, before the owner ran `shiprail migrate`: the sentence says the store is a
    revision behind and what to run, not only 'cannot check or migrate the database …: must be owner of table …'."""
    cfg = alembic_config()
    with pg_store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
        behind = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    grants = [
        "GRANT SELECT ON {schema}.alembic_version TO {role}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    ]
    with pg_role(pg_store, grants) as (role, schema):
        url = sa.make_url(pg_store.url).set(username=role)
        r = shiprail("release", "list", "--db", f"{url.render_as_string()}?options=-csearch_path%3D{schema}")
        shown = f"{url.render_as_string()}?options=-csearch_path%3D{schema}"
        assert (r.code, r.out) == (1, "")
        assert r.err.startswith(
            f"error: the database {shown} is at schema revision {behind} and this shiprail ({__version__}) needs "
            f"{SCHEMA_HEAD}, but migrating it failed: must be owner of table "
        )
        assert r.err.endswith("; run `shiprail migrate` once as the role that owns the schema (nothing was changed)\n")
    with pg_store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == behind
