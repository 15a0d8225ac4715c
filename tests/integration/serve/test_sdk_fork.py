"""An SDK client created before a pre-forking web server forks its workers (gunicorn ``--preload``).

``fork`` copies the client but not its threads: a worker kept the config it had for ever — a
rolled-back canary included — while the parent, under the same client id, acknowledged every
revision for it. Each forked worker must become a client of its own.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from shiprail.clock import WallClock
from shiprail.routers import FlagRouter
from shiprail.sdk import Client
from shiprail.serve import SdkService, create_app
from shiprail.store import flags
from shiprail.store.db import Store
from tests.support.serving import serving

KEY = "sdk-key-shop"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")


@pytest.fixture
def url(store: Store) -> Iterator[str]:
    with serving(create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})) as address:
        yield address


def clients_in_contact(store: Store) -> set[str]:
    with store.transaction() as s:
        return {c.client for c in flags.contacts(s, "shop", WallClock().now().replace(year=2000))}


def test_a_forked_worker_follows_a_rollback_itself_and_the_rollback_waits_for_it(
    store: Store, router: FlagRouter, url: str
) -> None:
    router.set_weight(100)
    client = Client(url, "shop", KEY, poll_wait=5)
    try:
        assert client.wait_ready(10)
        # serve's hub picks the publish up within its watch interval: until then it answers revision 0.
        deadline = time.monotonic() + 10
        while client.revision < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.variant("user-1") == "canary"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: wait for the rollback, then report what it serves
            try:
                os.close(read_end)
                deadline = time.monotonic() + 20
                while client.revision < 2 and time.monotonic() < deadline:
                    time.sleep(0.02)
                client.record("stable", False, 0.01)
                posted = client.flush()
                os.write(
                    write_end, f"{client.revision} {client.variant('user-1')} {client.client_id} {posted}".encode()
                )
            finally:
                os._exit(0)
        os.close(write_end)
        deadline = time.monotonic() + 10
        while len(clients_in_contact(store)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the worker's first poll, under an id of its own
        assert len(clients_in_contact(store)) == 2

        router.set_weight(0)

        assert router.confirmation is not None
        assert router.confirmation["summary"] == "revision 2 acknowledged by all 2 SDKs in contact"
        os.waitpid(pid, 0)
        with os.fdopen(read_end) as pipe:
            revision, variant, worker_id, posted = pipe.read().split()
        assert (revision, variant, posted) == ("2", "stable", "True")
        assert worker_id != client.client_id
        assert client.revision == 2 and client.variant("user-1") == "stable"
    finally:
        client.close()


def test_a_child_that_only_execs_another_program_starts_nothing_and_contacts_no_one(
    store: Store, router: FlagRouter, url: str
) -> None:
    """``subprocess`` with ``preexec_fn`` forks and runs the fork hooks before it execs."""
    router.set_weight(10)
    client = Client(url, "shop", KEY, poll_wait=5)
    try:
        assert client.wait_ready(10)
        for _ in range(10):
            subprocess.run(["true"], preexec_fn=os.getpid, check=True)  # preexec_fn: the point of the test
        time.sleep(0.5)  # a child that had started polling would have been heard from by now
        assert clients_in_contact(store) == {client.client_id}
        router.set_weight(0)
        assert router.confirmation is not None and router.confirmation["confirmed"]
    finally:
        client.close()
