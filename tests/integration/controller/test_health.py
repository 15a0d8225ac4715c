"""``shiprail controller --metrics-port``: /healthz follows the loop's passes, /metrics counts them.

A real HTTP server on 127.0.0.1; the loop's time is a simulated clock, so "no pass for a minute"
is one ``advance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shiprail.clock import SimulatedClock
from shiprail.controller.health import ControllerHealth


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
