from __future__ import annotations

from shiprail.store.db import Store


def test_store_opens_and_has_a_chain_head(store: Store) -> None:
    from shiprail.store import audit

    with store.transaction() as s:
        assert audit.head(s) == (0, audit.GENESIS)
