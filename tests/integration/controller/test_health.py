"""``shiprail controller --metrics-port``: /healthz follows the loop's passes, /metrics counts them
and shows each release the controller holds.

A real HTTP server on 127.0.0.1; the loop's time is a simulated clock, so "no pass for a minute"
is one ``advance``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shiprail.clock import SimulatedClock
from shiprail.controller.health import VERDICTS, ControllerHealth, ReleaseGauge, TriggerGauge


@pytest.fixture
def health() -> Iterator[tuple[ControllerHealth, SimulatedClock, str]]:
    clock = SimulatedClock()
    probe = ControllerHealth(clock, "host:1:ab", stale_after_s=15)
    server = probe.serve("127.0.0.1", 0)
    yield probe, clock, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def samples(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_is_200_while_the_loop_passes_and_503_once_it_stops(
    health: tuple[ControllerHealth, SimulatedClock, str],
) -> None:
    probe, clock, url = health
    assert httpx.get(f"{url}/healthz").status_code == 200  # just started: within its first 15 s
    start = clock.now()
    probe.observe(start, start + timedelta(seconds=2), failed=1, held=3)
    clock.advance(10)
    answer = httpx.get(f"{url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {
        "ok": True,
        "holder": "host:1:ab",
        "last_pass": (start + timedelta(seconds=2)).isoformat(),
        "seconds_since": 8.0,
        "stale_after_s": 15,
    }
    clock.advance(10)  # 18 s without a finished pass: the loop is stuck
    stuck = httpx.get(f"{url}/healthz")
    assert (stuck.status_code, stuck.json()["ok"], stuck.json()["seconds_since"]) == (503, False, 18.0)

    got = samples(url)
    assert got["shiprail_controller_passes_total"] == 1
    assert got["shiprail_controller_release_errors_total"] == 1
    assert got["shiprail_controller_releases"] == 3
    assert got["shiprail_controller_pass_seconds_count"] == 1 and got["shiprail_controller_pass_seconds_sum"] == 2
    assert got["shiprail_controller_last_pass_timestamp_seconds"] == (start + timedelta(seconds=2)).timestamp()
    assert httpx.get(f"{url}/other").status_code == 404
    # HEAD, as some probes and load balancers check: the same status, no body (it was 501).
    head = httpx.head(f"{url}/healthz")
    assert (head.status_code, head.content, head.headers["content-type"]) == (503, b"", "application/json")
    assert httpx.head(f"{url}/metrics").status_code == 200


def test_a_controller_that_never_finishes_a_pass_is_unhealthy(
    health: tuple[ControllerHealth, SimulatedClock, str],
) -> None:
    _, clock, url = health
    clock.advance(16)
    answer = httpx.get(f"{url}/healthz")
    assert (answer.status_code, answer.json()["last_pass"]) == (503, None)


def test_metrics_carry_one_set_of_series_per_held_release(health: tuple[ControllerHealth, SimulatedClock, str]) -> None:
    probe, clock, url = health
    now = clock.now()
    rolling = ReleaseGauge(
        "checkout-2.4.0",
        "checkout",
        "2.4.0",
        "2.3.1",
        "rolling_out",
        2,
        10.0,
        now - timedelta(minutes=5),
        now - timedelta(seconds=30),
        (
            TriggerGauge("errors", "pass", 0.002, None),
            TriggerGauge("error-regression", "inconclusive", math.nan, 0.25, dry_run=True),  # a trigger on trial
            TriggerGauge("errors", "fail", 0.5, None),  # a name seen twice (a probe's): the first stands
        ),
    )
    verifying = ReleaseGauge("search-1.1", "search", "1.1", "1.0", "verifying", None, 100.0, now, None)
    probe.observe(now, now, failed=0, held=2, rows=[rolling, verifying])
    probe.finished.labels("checkout", "rolled_back").inc()
    text = httpx.get(f"{url}/metrics").text
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("shiprail_release", "shiprail_controller_releases_finished_total"))
    }
    co, se = (
        (("release", "checkout-2.4.0"), ("service", "checkout")),
        (("release", "search-1.1"), ("service", "search")),
    )

    def info(key: tuple[tuple[str, str], ...], version: str, baseline: str, status: str) -> tuple[str, tuple[Any, ...]]:
        labels = dict(key) | {"version": version, "baseline": baseline, "status": status}
        return "shiprail_release_info", tuple(sorted(labels.items()))

    def trig(name: str, trigger: str, *extra: tuple[str, str]) -> tuple[str, tuple[Any, ...]]:
        return name, tuple(sorted([*co, ("trigger", trigger), *extra]))

    assert got == {
        info(co, "2.4.0", "2.3.1", "rolling_out"): 1,
        info(se, "1.1", "1.0", "verifying"): 1,
        ("shiprail_release_step", co): 2,  # no step in Verify
        ("shiprail_release_canary_weight", co): 10,
        ("shiprail_release_canary_weight", se): 100,
        ("shiprail_release_state_since_timestamp_seconds", co): (now - timedelta(minutes=5)).timestamp(),
        ("shiprail_release_state_since_timestamp_seconds", se): now.timestamp(),
        ("shiprail_release_last_analysis_timestamp_seconds", co): (now - timedelta(seconds=30)).timestamp(),
        **{
            trig("shiprail_release_trigger_verdict", "errors", ("verdict", v), ("dry_run", "false")): v == "pass"
            for v in VERDICTS
        },
        **{
            trig("shiprail_release_trigger_verdict", "error-regression", ("verdict", v), ("dry_run", "true")): v
            == "inconclusive"
            for v in VERDICTS
        },
        trig("shiprail_release_trigger_value", "errors"): 0.002,  # none for a value that is not a number
        trig("shiprail_release_trigger_p_value", "error-regression"): 0.25,  # only regression triggers have one
        # At 0 from the first pass that holds a release of the service, so that increase() sees the first.
        **{
            ("shiprail_controller_releases_finished_total", (("service", x), ("status", y))): 0
            for x in ("checkout", "search")
            for y in ("complete", "rolled_back")
        },
        ("shiprail_controller_releases_finished_total", (("service", "checkout"), ("status", "rolled_back"))): 1,
    }
    # A pass that could not read the store keeps the rows it had; the next one that could replaces them.
    probe.observe(now, now, failed=1, held=2, rows=None)
    assert probe.registry.get_sample_value("shiprail_release_step", dict(co)) == 2
    probe.observe(now, now, failed=0, held=0, rows=[])
    assert probe.registry.get_sample_value("shiprail_release_step", dict(co)) is None


def test_the_services_named_at_the_start_count_finished_releases_from_zero() -> None:
    # Before any pass: a controller that ends a release it has just taken over in its first pass
    # must not make the counter's first sample 1, which increase() would not count.
    probe = ControllerHealth(SimulatedClock(), "host:1:ab", stale_after_s=15, services=["checkout", "search"])
    server = probe.serve("127.0.0.1", 0)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    finished = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "shiprail_controller_releases_finished_total"
    }
    assert finished == {
        (("service", service), ("status", status)): 0
        for service in ("checkout", "search")
        for status in ("complete", "rolled_back")
    }
