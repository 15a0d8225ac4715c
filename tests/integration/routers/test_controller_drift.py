"""The controller against a real HAProxy that loses the canary's weight (restarted, or set by
hand): it notices at the next analysis, sets the step's weight again, and does not count the
time the router held another weight as bake."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.clock import SimulatedClock
from shiprail.controller import Controller
from shiprail.domain.contract import Sample
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.routers import HaproxyRouter, HaproxyRouterConfig
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import Store
from tests.support.overrides import override
from tests.support.samples import healthy

from .conftest import Haproxy, measure

PLAN = Path("releases/checkout-2.4.0.yaml")
REASON = "Carol is out sick; Bob reviewed the whole diff twice"


class Healthy:
    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        return healthy(name)


def test_a_router_that_lost_its_weight_is_set_again_and_does_not_bake(
    project: Path, sqlite_store: Store, haproxy: Haproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    PLAN.write_text(text[: text.index("  probes:")].replace("rollout:\n", "rollout:\n  analysis_interval: 10m\n"))
    svc = Releases(sqlite_store, SimulatedClock(), open_project(project).policy)
    rid = svc.create(check_plan_file(PLAN), "alice").id
    for done in ("Holiday rota needs two approvers.", "Load tests now run in the pipeline."):
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", done)
    config = HaproxyRouterConfig(
        type="haproxy", socket=str(haproxy.socket), backend="checkout", stable_server="stable", canary_server="canary"
    )
    router = HaproxyRouter(config)
    ctl = Controller(svc, routers=lambda r: router, providers=lambda r: Healthy())  # type: ignore[arg-type,return-value]
    ctl.tick()
    while svc.get(rid).step == 0:
        svc.clock.advance(600)  # type: ignore[attr-defined]
        ctl.tick()
    assert router.current_weight() == 10
    # What a HAProxy restart does: the servers are back at the configuration's weights.
    router.set_server_weight("stable", 100)
    router.set_server_weight("canary", 0)
    assert measure(haproxy.url, 50) == {"stable": 50}
    for _ in range(3):
        svc.clock.advance(600)  # type: ignore[attr-defined]
        ctl.tick()
    assert router.current_weight() == 10
    assert measure(haproxy.url, 200)["canary"] == 20
    view = svc.get(rid)
    assert (view.step, view.progress["applied_weight"]) == (1, 10)
    assert view.progress["baked_s"] == 1200  # counted again from the re-applied weight, not 1800
    with svc.store.transaction() as s:
        drifted = [r.payload for r in audit.rows(s) if r.kind == "router.drifted"]
    assert drifted == ['{"expected":10.0,"found":0.0}']
