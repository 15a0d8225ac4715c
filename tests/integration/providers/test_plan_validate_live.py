"""``shiprail plan validate --live`` against a real Prometheus scraping a running baseline.

The plan checks only read files; ``--live`` also asks the service's provider what every metric
trigger reads now for the baseline, so a query Prometheus refuses is found before any traffic
moves, not at the canary's first analysis.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiprail.cli.main import main
from tests.support.exposition import metrics_endpoint

from .conftest import start_prometheus, wait_for_series

PLAN = "releases/checkout-2.4.0.yaml"
STARTED = time.monotonic()


def baseline() -> str:
    """``/metrics`` of checkout 2.3.1: 20 requests a second, all 200 and all under 100 ms."""
    served = 100 + int((time.monotonic() - STARTED) * 20)
    labels = 'app="checkout",version="2.3.1"'
    return (
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{{labels},code="200"}} {served}\n'
        "# TYPE http_request_duration_seconds histogram\n"
        f'http_request_duration_seconds_bucket{{{labels},le="0.1"}} {served}\n'
        f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {served}\n'
        f"http_request_duration_seconds_sum{{{labels}}} {served * 0.05}\n"
        f"http_request_duration_seconds_count{{{labels}}} {served}\n"
    )


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    with metrics_endpoint(baseline) as target:
        prometheus = start_prometheus(tmp_path_factory.mktemp("live"), [target], request)
        # rate() over the window needs two samples of the series.
        wait_for_series(prometheus, 'count_over_time(http_requests_total{version="2.3.1"}[5m]) >= 3', 1)
        yield prometheus.url


@pytest.fixture
def project(tmp_path: Path, prometheus_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    assert main(["init", "."]) == 0
    service = tmp_path / "services/checkout.yaml"
    text = service.read_text(encoding="utf-8")
    assert text.count("url: http://127.0.0.1:9090") == 1
    service.write_text(text.replace("url: http://127.0.0.1:9090", f"url: {prometheus_url}"), encoding="utf-8")
    return tmp_path


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = main(["plan", "validate", PLAN, "--live", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_live_reads_every_metric_trigger_of_the_baseline(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = validate(capsys)
    assert (code, err) == (0, "")
    assert lines[0].startswith(f"{PLAN}: ok — checkout 2.3.1 → 2.4.0")
    assert re.fullmatch(r"  live: trigger errors: error_rate for 2\.3\.1 over 5m: 0 \([\d,]+ samples\)", lines[1])
    # The sample service's trickle of traffic leaves the canary short of min_samples at 1 %: said.
    assert re.fullmatch(
        r"  warning: at the first step \(1%\) the canary would get about \d+ of the 200 samples trigger errors "
        r"needs over 5m at today's traffic, so it would stay inconclusive and the release pause for missing data; "
        r"lower min_samples or lengthen the window",
        lines[2],
    ), lines[2]
    # Every request under 100 ms: histogram_quantile puts p99 inside the first bucket.
    assert re.fullmatch(r"  live: trigger slow: latency_p99 for 2\.3\.1 over 5m: 0\.0\d+", lines[3]), lines[3]
    # The regression triggers (no window) are read over the analysis interval: the counts one analysis adds.
    assert re.fullmatch(
        r"  live: trigger error-regression: error_rate for 2\.3\.1 over 1m: 0 \([\d,]+ samples\)", lines[4]
    ), lines[4]
    assert re.fullmatch(r"  live: trigger latency-regression: latency_p99 for 2\.3\.1 over 1m: 0\.0\d+", lines[5]), (
        lines[5]
    )
    assert len(lines) == 6


def test_a_query_prometheus_refuses_exits_1_naming_the_trigger(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = project / "services/checkout.yaml"
    text = service.read_text(encoding="utf-8")
    service.write_text(text.replace("count_query: sum(increase(", "count_query: sum(increase(("), encoding="utf-8")
    code, lines, err = validate(capsys)
    assert code == 1
    assert lines[1] == (
        "  live: trigger errors: error_rate for 2.3.1 over 5m failed: prometheus: metric 'error_rate' count_query: "
        'bad_data: invalid parameter "query": 1:74: parse error: unclosed left parenthesis'
    )
    # The error-regression trigger reads the same count_query, and fails the same way.
    assert lines[3] == (
        "  live: trigger error-regression: error_rate for 2.3.1 over 1m failed: prometheus: metric 'error_rate' "
        'count_query: bad_data: invalid parameter "query": 1:73: parse error: unclosed left parenthesis'
    )
    assert err == (
        "error: 2 metric queries failed against the provider (above); fix what each names (the service file's "
        "query, the provider's address or its credentials) before the release starts\n"
    )

    code, _, _ = validate(capsys, "--json")
    assert code == 1


def test_without_live_nothing_is_asked(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    service = project / "services/checkout.yaml"
    text = service.read_text(encoding="utf-8")
    service.write_text(text.replace("count_query: sum(increase(", "count_query: sum(increase(("), encoding="utf-8")
    capsys.readouterr()
    assert main(["plan", "validate", PLAN]) == 0
