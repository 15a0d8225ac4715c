"""PostgreSQL connections carry libpq's ``tcp_user_timeout``: data the server does not take within it
ends the connection with an error, instead of a query hanging for the kernel's ~15 minutes of
retransmissions (keepalives only watch idle connections)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from shiprail import defaults
from shiprail.store.db import Store
from tests.conftest import PG_URL, require_pg
from tests.support.stores import pg_schema, pg_schema_store
from tests.support.tcp_proxy import Proxy


def libpq_parameters(store: Store) -> dict[str, str]:
    """The connection parameters libpq was given for a connection of ``store`` (non-default ones)."""
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        return dict(raw.info.get_parameters())  # type: ignore[attr-defined]


def test_the_default_is_a_minute() -> None:
    assert defaults.PG_TCP_USER_TIMEOUT_MS == 60_000
    assert defaults.PG_CONNECT_ARGS["tcp_user_timeout"] == defaults.PG_TCP_USER_TIMEOUT_MS


def test_postgresql_connections_are_opened_with_tcp_user_timeout() -> None:
    require_pg()
    with pg_schema_store(PG_URL, "t_") as store:
        params = libpq_parameters(store)
        assert params["tcp_user_timeout"] == "60000"
        assert (params["keepalives_idle"], params["connect_timeout"]) == ("30", "10")
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_the_urls_own_tcp_user_timeout_wins() -> None:
    require_pg()
    with pg_schema(PG_URL, "t_") as schema:
        store = Store(
            f"{PG_URL}?tcp_user_timeout=5000", engine_options={"connect_args": {"options": f"-csearch_path={schema}"}}
        )
        try:
            assert libpq_parameters(store)["tcp_user_timeout"] == "5000"
        finally:
            store.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    require_pg()
    url = sa.make_url(PG_URL)
    running = Proxy((url.host or "127.0.0.1", url.port or 5432))
    yield running
    running.close()


def via(proxy: Proxy) -> str:
    return sa.make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def test_without_tcp_user_timeout_the_same_query_waits(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: libpq's 0 is the kernel's default, under which the query below waits (here until
    # the proxy forwards again), so it is the setting that ends it in the test after this one.
    monkeypatch.setitem(defaults.PG_CONNECT_ARGS, "tcp_user_timeout", 0)
    with pg_schema_store(via(proxy), "t_") as store, store.engine.connect() as conn:
        proxy.blackhole.set()
        outcome: list[BaseException | int] = []

        def query() -> None:
            try:
                outcome.append(conn.execute(sa.text("SELECT length(:s)"), {"s": "x" * 16_000_000}).scalar_one())
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=query, daemon=True)
        thread.start()
        thread.join(4)
        waited = thread.is_alive()
        proxy.blackhole.clear()
        thread.join(25)
        assert waited
        assert outcome == [16_000_000]


def test_a_query_the_server_stops_taking_mid_way_fails_within_the_tcp_user_timeout(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(defaults.PG_CONNECT_ARGS, "tcp_user_timeout", 1000)
    with pg_schema_store(via(proxy), "t_") as store, store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1  # through the proxy
        proxy.blackhole.set()
        outcome: list[BaseException | int] = []

        def query() -> None:
            try:
                # 16 MB of parameter: far more than the kernel buffers between client and proxy.
                outcome.append(conn.execute(sa.text("SELECT length(:s)"), {"s": "x" * 16_000_000}).scalar_one())
            except BaseException as exc:
                outcome.append(exc)

        began = time.monotonic()
        thread = threading.Thread(target=query, daemon=True)
        thread.start()
        thread.join(25)
        took = time.monotonic() - began
        proxy.blackhole.clear()  # whatever happened, let the connection's clean-up through
        assert not thread.is_alive(), "the query hung on a server that stopped taking its data"
        assert took < 15
        [failed] = outcome
        # libpq finds the socket closed by the kernel: "server closed the connection unexpectedly".
        assert isinstance(failed, OperationalError), failed
        assert "server closed the connection unexpectedly" in str(failed), str(failed)
