"""``shiprail plan validate --live`` for a service on the ``push`` provider (what the SDK records).

A new project has no store until ``shiprail serve`` or a release command creates one: nothing can
have been pushed yet, so every trigger reads no data — the documented outcome, exit 0 — and the
check creates no store. A store named with ``--db`` that does not exist stays an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shiprail.clock import WallClock
from shiprail.providers.push import record_batch
from shiprail.store.db import Store, default_url

PLAN = "releases/checkout-2.4.0.yaml"
# README.md's in-app service: the flag router and the push provider.
PUSH_SERVICE = """\
name: checkout
router: {type: flag}
provider: {type: push}
metrics:
  error_rate: {kind: error_rate, counter: sdk_requests_total, errors: sdk_errors_total}
  latency_p99: {kind: latency, histogram: sdk_latency_seconds, quantile: 0.99}
"""
NO_DATA = [
    "  live: trigger errors: error_rate for 2.3.1 over 5m: no data (no app pushed 2.3.1's metrics over that window)",
    "  live: trigger slow: latency_p99 for 2.3.1 over 5m: no data (no app pushed 2.3.1's metrics over that window)",
    # A regression trigger has no window: it is read over the analysis interval, what one analysis adds.
    "  live: trigger error-regression: error_rate for 2.3.1 over 1m: no data "
    "(no app pushed 2.3.1's metrics over that window)",
    "  live: trigger latency-regression: latency_p99 for 2.3.1 over 1m: no data "
    "(no app pushed 2.3.1's metrics over that window)",
]


@pytest.fixture
def pushed(project: Path) -> Path:
    (project / "services" / "checkout.yaml").write_text(PUSH_SERVICE, encoding="utf-8")
    return project


def live_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  live:")]


def test_a_new_project_without_a_store_reads_no_data_and_creates_none(shiprail: Any, pushed: Path) -> None:
    code, out, err = shiprail("plan", "validate", PLAN, "--live")

    assert (code, err) == (0, "")
    assert live_lines(out) == NO_DATA
    assert not (pushed / ".shiprail" / "shiprail.db").exists()


def test_what_the_sdk_pushed_is_read_from_the_projects_store(shiprail: Any, pushed: Path) -> None:
    store = Store(default_url(pushed))
    try:
        record_batch(
            store,
            WallClock(),
            service="checkout",
            client="c-1",
            versions={"2.3.1": {"requests": 400, "errors": 2, "latency": {"0.05": 390, "0.25": 10}}},
        )
    finally:
        store.close()

    code, out, _ = shiprail("plan", "validate", PLAN, "--live")

    assert code == 0
    # p99: the 396th of 400 requests, 6 of the 10 into the bucket (0.1, 0.25] (the bucket below, up
    # to 0.1, is empty), read as Prometheus' histogram_quantile does: 0.1 + 0.6 × 0.15.
    assert live_lines(out) == [
        "  live: trigger errors: error_rate for 2.3.1 over 5m: 0.005 (400 samples)",
        "  live: trigger slow: latency_p99 for 2.3.1 over 5m: 0.19 (400 samples)",
        "  live: trigger error-regression: error_rate for 2.3.1 over 1m: 0.005 (400 samples)",
        "  live: trigger latency-regression: latency_p99 for 2.3.1 over 1m: 0.19 (400 samples)",
    ]
    # 400 requests in 5 min is 4 for the canary at 1 %: the first-canary trap, said before it happens.
    assert [line for line in out.splitlines() if line.startswith("  warning:")] == [
        "  warning: at the first step (1%) the canary would get about 4 of the 200 samples trigger errors needs over "
        "5m at today's traffic, so it would stay inconclusive and the release pause for missing data; lower "
        "min_samples or lengthen the window"
    ]
    code, out, _ = shiprail("plan", "validate", PLAN, "--live", "--json")
    [errors, slow, error_regression, latency_regression] = json.loads(out)["files"][0]["live"]
    assert (errors["warning"].startswith("at the first step (1%)"), "warning" in slow) == (True, False)
    # No min_samples on the regression triggers: nothing for the first step to fall short of.
    assert ("warning" in error_regression, "warning" in latency_regression) == (False, False)


def test_a_store_named_with_db_that_does_not_exist_is_an_error(shiprail: Any, pushed: Path, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "typo.db"

    code, _, err = shiprail("plan", "validate", PLAN, "--live", "--db", f"sqlite:///{missing}")

    assert code == 2
    assert f"no shiprail store at {missing}" in err
    assert not missing.exists()
