"""Two controllers and a real nginx whose reload is slower than the lease: the controller whose
call is running keeps its lease renewed (a heartbeat), so the other one cannot take the release
over and write its weight underneath the slow call, and the router ends at the weight the store
says (0 after a rollback), not at the slow call's.

Real time here: the heartbeat exists for calls that take real time. The lease is 1 s and the
reload of 10 % takes 3 s."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from shiprail.clock import WallClock
from shiprail.controller import Controller
from shiprail.domain.contract import Sample
from shiprail.domain.states import Action
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.routers import HaproxyRouter, HaproxyRouterConfig, NginxRouter
from shiprail.routers.nginx import render
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import Lease
from tests.support.overrides import override
from tests.support.samples import healthy

from .conftest import Backends, Haproxy, Nginx, measure
from .test_nginx import make_config

PLAN = Path("releases/checkout-2.4.0.yaml")
REASON = "Carol is out sick; Bob reviewed the whole diff twice"
LEASE_S = 1.0
HANG_S = 3.0

# nginx, except that reloading a file that says weight=10 first waits HANG_S (and says so).
SLOW_NGINX = """#!/bin/sh
case "$*" in
  *"-s reload"*)
    if grep -q "weight=10 " "{include}"; then touch "{hanging}"; sleep {hang}; fi ;;
esac
exec "{nginx}" "$@"
"""


class Healthy:
    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        return healthy(name)


def started_release(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[Releases, str]:
    """The example plan (without probes) on the wall clock, through its Stage and Start gates by override."""
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    PLAN.write_text(text[: text.index("  probes:")])
    svc = Releases(store, WallClock(), open_project(project).policy)
    rid = svc.create(check_plan_file(PLAN), "alice").id
    for done in ("Holiday rota needs two approvers.", "Load tests now run in the pipeline."):
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", done)
    return svc, rid


def test_a_slow_reload_keeps_its_lease_and_a_rollback_meanwhile_ends_at_weight_0(
    project: Path,
    sqlite_store: Store,
    nginx_factory: Callable[[str, str], Nginx],
    backends: Backends,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc, rid = started_release(project, sqlite_store, monkeypatch)
    d = tmp_path / "nginx0"
    config = make_config("nginx", d, backends, timeout="10s")
    nginx = nginx_factory("checkout", render(config, 0))
    hanging = tmp_path / "hanging"
    wrapper = tmp_path / "slow-nginx"
    wrapper.write_text(SLOW_NGINX.format(include=config.include_file, hanging=hanging, hang=HANG_S, nginx=nginx.binary))
    wrapper.chmod(0o755)
    router = NginxRouter(config.model_copy(update={"nginx_binary": str(wrapper)}), "checkout")

    def make() -> Controller:
        return Controller(
            svc,
            routers=lambda r: router,
            providers=lambda r: Healthy(),  # type: ignore[arg-type,return-value]
            lease_s=LEASE_S,
            heartbeat_s=LEASE_S / 5,
        )

    a, b = make(), make()
    a.tick()
    assert router.current_weight() == 1
    override(svc, rid, "dana", "Hotfix for the outage; bake waived by the CTO")  # now at step 2: 10 %

    slow = threading.Thread(target=a.tick)
    slow.start()
    deadline = time.monotonic() + 10
    while not hanging.exists():
        assert time.monotonic() < deadline, "nginx -s reload for 10 % never started"
        time.sleep(0.01)
    svc.act(rid, Action.ROLLBACK, "bob", reason="pager")
    # B keeps trying for longer than the lease while A's reload hangs.
    while slow.is_alive():
        b.tick()
        time.sleep(0.05)
    slow.join()
    b.close()
    a.run(until_done=True)

    view = svc.get(rid)
    assert view.status == "rolled_back"
    assert router.current_weight() == 0
    # A reload is asynchronous: the old workers finish what they serve, then only stable answers.
    deadline = time.monotonic() + 10
    while (counts := measure(nginx.url, 50)) != {"stable": 50} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counts == {"stable": 50}
    with svc.store.transaction() as s:
        rows = [r for r in audit.rows(s) if r.release_id == rid]
    applied = [json.loads(r.payload)["weight"] for r in rows if r.kind == "router.applied"]
    assert applied == [1, 10, 0]
    assert [r.kind for r in rows if r.kind.startswith("router.st")] == []  # no stale call
    attached = [json.loads(r.payload)["holder"] for r in rows if r.kind == "controller.attached"]
    assert attached == [a.holder]  # B never drove the release


def lease_mark(store: Store, rid: str) -> object:
    """The fence on the release's lease (``calls_until``): None when its holder's call marks nothing."""
    with store.transaction() as s:
        lease = s.get(Lease, rid)
        return "no lease" if lease is None else lease.calls_until


def watched_haproxy(address: str, before_set: Callable[[float], None]) -> HaproxyRouter:
    """A HAProxy router of the fixture's `checkout` backend through ``address``, calling
    ``before_set`` with each weight as its ``set_weight`` starts."""

    class WatchedHaproxy(HaproxyRouter):
        def set_weight(self, weight: float) -> None:
            before_set(weight)
            super().set_weight(weight)

    return WatchedHaproxy(
        HaproxyRouterConfig(
            type="haproxy", socket=address, backend="checkout", stable_server="stable", canary_server="canary"
        )
    )


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_an_nginx_or_haproxy_call_does_not_fence_the_lease_so_a_killed_controller_is_replaced_at_once(
    kind: str,
    project: Path,
    sqlite_store: Store,
    backends: Backends,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # A controller SIGKILLed during an nginx reload (two controllers on PostgreSQL, nginx timeout
    # 10s) was replaced only 50.4 s later, when the fence its call had set on the lease (4 x timeout
    # + 10 s; 250 s with the default 1m) passed: the release was undriven, its contract unwatched,
    # meanwhile. Nothing of such a call can land once its controller is gone, unlike a command
    # router's script, so the lease is not fenced; the heartbeat still keeps it while the call runs.
    svc, rid = started_release(project, sqlite_store, monkeypatch)
    marks: list[tuple[float, object]] = []

    router: NginxRouter | HaproxyRouter
    if kind == "nginx":

        class WatchedNginx(NginxRouter):
            def set_weight(self, weight: float) -> None:
                marks.append((weight, lease_mark(svc.store, rid)))
                super().set_weight(weight)

        config = make_config("nginx", tmp_path / "nginx0", backends, timeout="10s")
        nginx = request.getfixturevalue("nginx_factory")("checkout", render(config, 0))
        router = WatchedNginx(config.model_copy(update={"nginx_binary": nginx.binary}), "checkout")
    else:
        haproxy: Haproxy = request.getfixturevalue("haproxy")
        router = watched_haproxy(str(haproxy.socket), lambda w: marks.append((w, lease_mark(svc.store, rid))))
    ctl = Controller(svc, routers=lambda r: router, providers=lambda r: Healthy())  # type: ignore[arg-type,return-value]
    ctl.tick()
    ctl.close()
    assert router.current_weight() == 1
    assert marks == [(1, None)]


def test_a_haproxy_call_over_tcp_fences_the_lease_since_its_bytes_outlive_a_killed_controller(
    project: Path, sqlite_store: Store, haproxy: Haproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runtime API over TCP (`socket: host:port`, a HAProxy on another machine): the kernel keeps
    # retransmitting a killed controller's unacknowledged `set weight` (an orphaned socket), so it
    # can reach HAProxy after a replica on the same host took the release over at once and rolled
    # it back, and leave the canary its traffic for good, as a command router's script can. The
    # call marks its deadline on the lease like one (before: no mark, as for a unix socket), and
    # clears it when it returns.
    svc, rid = started_release(project, sqlite_store, monkeypatch)
    marks: list[tuple[float, object]] = []
    router = watched_haproxy(haproxy.admin_address, lambda w: marks.append((w, lease_mark(svc.store, rid))))
    ctl = Controller(svc, routers=lambda r: router, providers=lambda r: Healthy())  # type: ignore[arg-type,return-value]
    ctl.tick()
    ctl.close()
    assert router.current_weight() == 1
    [(weight, mark)] = marks
    assert weight == 1 and isinstance(mark, datetime)
    assert lease_mark(svc.store, rid) is None
