"""What a command says when PostgreSQL refuses it mid-command: one sentence, exit 1, no traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail.store.db import Store
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
