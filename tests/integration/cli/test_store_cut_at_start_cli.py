"""``shiprail serve`` and ``shiprail controller`` started while their PostgreSQL is cut off (a
restart, a failover: the connection cut as it opens, new ones refused), through a real TCP proxy
(tests/support/tcp_proxy.py): both wait for it, saying so once a poll, as the running controller
does, and start once it answers, instead of exiting 1 for the supervisor to try again."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from shiprail.clock import WallClock
from shiprail.serve import SdkService, create_app
from shiprail.store.db import Store
from tests.conftest import PG_URL, require_pg
from tests.support.processes import stop
from tests.support.serving import serving
from tests.support.stores import pg_schema
from tests.support.tcp_proxy import Proxy


@pytest.fixture
def proxied_url() -> Iterator[tuple[str, Proxy]]:
    """A store in a schema of its own, and its URL through a proxy (refusing connections at first)."""
    require_pg()
    url = sa.make_url(PG_URL)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    with pg_schema(PG_URL, "t_") as schema:
        Store(PG_URL, engine_options={"connect_args": {"options": f"-csearch_path={schema}"}}).close()
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        sep = "&" if "?" in through else "?"
        try:
            yield f"{through}{sep}options={quote(f'-csearch_path={schema}')}", proxy
        finally:
            proxy.close()


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (["serve", "--port", "0", "--no-controller"], "shiprail serve: http://"),
        (["serve", "--port", "0"], "shiprail serve: http://"),
        (["controller", "--poll", "1"], "controller "),
    ],
    ids=["serve-no-controller", "serve", "controller"],
)
def test_a_store_cut_off_as_it_opens_is_waited_for_not_an_exit(
    project: Path, proxied_url: tuple[str, Proxy], command: list[str], ready: str
) -> None:
    url, proxy = proxied_url
    proxy.refusing.set()
    log = project / "err.log"
    env = {**os.environ, "SHIPRAIL_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shiprail", *command], cwd=project, env=env, stdout=subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.decode() for line in proc.stdout), daemon=True).start()  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and log.read_text().count("looking again in 1s") < 2:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        said = log.read_text().splitlines()
        assert len(said) >= 2
        assert set(said) == {
            f'cannot reach the store: connection failed: connection to server at "127.0.0.1", port {proxy.port} '
            "failed: server closed the connection unexpectedly; looking again in 1s"
        }, said
        proxy.refusing.clear()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(line.startswith(ready) for line in lines):
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert any(line.startswith(ready) for line in lines), lines
        if command[0] == "serve":
            address = next(line for line in lines if line.startswith(ready)).split()[2]
            assert httpx.get(f"{address}/healthz").status_code == 200
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_serve_whose_store_is_cut_just_after_it_opened_starts_and_answers_503_until_it_answers(
    proxied_url: tuple[str, Proxy], caplog: pytest.LogCaptureFixture
) -> None:
    # The store opened (the schema checked), then its connection cut and new ones refused as the app
    # started: serve's flag hub failed its first read, and serve exited 1 (uvicorn's "Application
    # startup failed"), while its controller would have ridden the outage out.
    url, proxy = proxied_url
    store = Store(url)
    proxy.refusing.set()
    proxy.cut()
    caplog.set_level(logging.WARNING, logger="shiprail.serve.hub")
    try:
        app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", "k")}, flag_watch_s=0.1)
        with serving(app) as base, httpx.Client(base_url=base, headers={"Authorization": "Bearer k"}) as http:
            got = http.get("/api/v1/sdk/shop/config")
            assert (got.status_code, got.json()) == (
                503,
                {"detail": "shiprail serve cannot reach its store right now; try again"},
            )
            assert http.get("/healthz").status_code == 200  # alive: it waits for its store
            proxy.refusing.clear()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and got.status_code != 200:
                time.sleep(0.1)
                got = http.get("/api/v1/sdk/shop/config")
            assert (got.status_code, got.json()["revision"]) == (200, 0)
    finally:
        store.close()
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == (
        "flag hub cannot reach the store: consuming input failed: server closed the connection unexpectedly; "
        "no config is served until it does (looking again every 0.1s)"
    )
    assert said[1:] == ["flag hub reaches the store again"]


@pytest.mark.parametrize(
    ("command", "who", "refusal"),
    [
        (
            ["serve", "--port", "0", "--no-controller"],
            {"database": "shiprail_no_such_db"},
            'database "shiprail_no_such_db"',
        ),
        (["controller", "--poll", "1"], {"username": "shiprail_no_such_role"}, 'role "shiprail_no_such_role"'),
        (
            ["controller", "--poll", "1"],
            {"query": {"sslmode": "verify-full", "sslrootcert": "/nonexistent/root.crt"}},
            "",
        ),
    ],
    ids=["serve-missing-database", "controller-missing-role", "controller-ssl-it-cannot-check"],
)
def test_a_server_that_refuses_the_login_or_database_is_an_exit_not_a_wait(
    project: Path, command: list[str], who: dict[str, Any], refusal: str
) -> None:
    # The server answered "no": it answers the same at every try. Waiting for it (logging "cannot
    # reach the store" once a second for ever) hid a typo in the URL behind a process that looked up.
    require_pg()
    url = sa.make_url(PG_URL).set(**who).render_as_string(hide_password=False)  # type: ignore[arg-type]
    env = {**os.environ, "SHIPRAIL_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "shiprail", *command], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "looking again" not in done.stderr
    said = done.stderr.strip().splitlines()
    assert said[-1].startswith("error: cannot open the database "), said
    # No server to refuse an SSL it does not offer, or a root certificate that is not there: libpq says so.
    assert (
        f"failed: FATAL:  {refusal} does not exist" in said[-1]
        if refusal
        else "SSL" in said[-1] or "certificate" in said[-1]
    ), said
