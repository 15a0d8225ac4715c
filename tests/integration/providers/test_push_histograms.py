"""SDK metric batches in the push provider: ``record_batch`` and latency quantiles from pushed buckets.

On a real store (SQLite and PostgreSQL), on a simulated clock.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail import defaults
from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.errors import BadInput
from shiprail.providers import PushProviderConfig, metric_problem
from shiprail.providers.push import PushProvider, check_metric, record_batch
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import SignalEvent

NOW = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
WINDOW = 300
CANARY, STABLE = "2.0.0", "1.9.0"

REQUESTS, ERRORS, LATENCY = defaults.SDK_REQUESTS_SIGNAL, defaults.SDK_ERRORS_SIGNAL, defaults.SDK_LATENCY_SIGNAL
ERROR_RATE = Metric(kind="error_rate", counter=REQUESTS, errors=ERRORS)
P50 = Metric(kind="latency", histogram=LATENCY, quantile=0.5)
P99 = Metric(kind="latency", histogram=LATENCY, quantile=0.99)

# The batch of docs/flags.md: 120 requests, 3 errors, per-bucket (not cumulative) latencies.
DOC_LATENCY = {"0.005": 10, "0.01": 40, "0.025": 50, "0.05": 12, "0.1": 5, "0.25": 2, "0.5": 1}
DOC_BATCH: dict[str, Any] = {CANARY: {"requests": 120, "errors": 3, "latency": DOC_LATENCY}}


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def batch(store: Store, versions: dict[str, Any], at: datetime = NOW, client: str = "c-1f3a") -> int:
    """One SDK batch received at ``at``."""
    return record_batch(store, SimulatedClock(at), service="checkout", client=client, versions=versions)


@pytest.fixture
def provider(store: Store) -> PushProvider:
    return PushProvider(store, SimulatedClock(NOW), "checkout")


def rows(store: Store) -> list[tuple[Any, ...]]:
    with store.transaction() as s:
        found = s.execute(sa.select(SignalEvent).order_by(SignalEvent.id)).scalars().all()
        return [(r.service, r.version, r.name, r.value, r.le, r.at, r.actor, r.note) for r in found]


def signal_rows(store: Store) -> int:
    with store.transaction() as s:
        return s.execute(sa.select(sa.func.count()).select_from(SignalEvent)).scalar_one()


def audit_events(store: Store) -> int:
    with store.transaction() as s:
        return len(list(audit.rows(s)))


# ------------------------------------------------------------------------------------ recording


def test_a_batch_is_stored_as_exact_rows_without_an_audit_event(store: Store) -> None:
    versions = {
        CANARY: {"requests": 120, "errors": 3, "latency": {**DOC_LATENCY, "0.75": 0, "+Inf": 0}},
        STABLE: {"requests": 40, "errors": 0, "latency": {"0.005": 39, "+Inf": 1}},
        "1.8.0": {"requests": 0},  # nothing happened: no rows
    }
    assert batch(store, versions) == 12

    def row(version: str, name: str, value: float, le: float | None = None) -> tuple[Any, ...]:
        return ("checkout", version, name, value, le, NOW, "sdk:c-1f3a", "")

    assert rows(store) == [
        row(CANARY, REQUESTS, 120.0),
        row(CANARY, ERRORS, 3.0),
        row(CANARY, LATENCY, 10.0, 0.005),
        row(CANARY, LATENCY, 40.0, 0.01),
        row(CANARY, LATENCY, 50.0, 0.025),
        row(CANARY, LATENCY, 12.0, 0.05),
        row(CANARY, LATENCY, 5.0, 0.1),
        row(CANARY, LATENCY, 2.0, 0.25),
        row(CANARY, LATENCY, 1.0, 0.5),
        # errors 0 and the empty buckets: no rows
        row(STABLE, REQUESTS, 40.0),
        row(STABLE, LATENCY, 39.0, 0.005),
        row(STABLE, LATENCY, 1.0, math.inf),  # "+Inf": stored as infinity, read back as it
    ]
    assert audit_events(store) == 0


def test_an_empty_batch_stores_nothing(store: Store) -> None:
    assert batch(store, {}) == 0
    assert batch(store, {CANARY: {"requests": 0, "errors": 0, "latency": {"0.1": 0}}}) == 0
    assert signal_rows(store) == 0


def test_bounds_may_be_written_as_any_number_and_float_counts_may_be_whole(store: Store) -> None:
    versions = {CANARY: {"requests": 3.0, "latency": {"1": 1, "1e-2": 1.0, "inf": 1}}}
    assert batch(store, versions) == 4
    assert [(name, value, le) for _, _, name, value, le, *_ in rows(store)] == [
        (REQUESTS, 3.0, None),
        (LATENCY, 1.0, 0.01),
        (LATENCY, 1.0, 1.0),
        (LATENCY, 1.0, math.inf),
    ]


V = 'versions["2.0.0"]'


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ([CANARY], "versions: must be an object of version → outcomes, got list"),
        ({"": {"requests": 1}}, 'versions[""]: the version is empty'),
        ({"  ": {"requests": 1}}, 'versions["  "]: the version is empty'),
        ({3: {"requests": 1}}, "versions: a version must be a string, got 3"),
        ({CANARY: [1, 2]}, f"{V}: must be an object with requests, errors and latency, got list"),
        (
            {CANARY: {"requests": 1, "latncy": {}}},
            f'{V}: unknown field "latncy"; the fields are requests, errors and latency',
        ),
        ({CANARY: {"errors": 0}}, f"{V}.requests is missing; send the number of requests (0 for none)"),
        ({CANARY: {"requests": -1}}, f"{V}.requests: a count must be a whole number of at least 0, got -1"),
        ({CANARY: {"requests": 1.5}}, f"{V}.requests: a count must be a whole number of at least 0, got 1.5"),
        ({CANARY: {"requests": math.nan}}, f"{V}.requests: a count must be a whole number of at least 0, got nan"),
        ({CANARY: {"requests": math.inf}}, f"{V}.requests: a count must be a whole number of at least 0, got inf"),
        ({CANARY: {"requests": "12"}}, f"{V}.requests: a count must be a whole number of at least 0, got '12'"),
        ({CANARY: {"requests": True}}, f"{V}.requests: a count must be a whole number of at least 0, got True"),
        ({CANARY: {"requests": None}}, f"{V}.requests: a count must be a whole number of at least 0, got None"),
        ({CANARY: {"requests": 2**53 + 1}}, f"{V}.requests: a count must be at most {2**53}, got {2**53 + 1}"),
        ({CANARY: {"requests": 1, "errors": -2}}, f"{V}.errors: a count must be a whole number of at least 0, got -2"),
        ({CANARY: {"requests": 3, "errors": 5}}, f"{V}.errors: 5 errors is more than the 3 requests"),
        (
            {CANARY: {"requests": 1, "latency": {"10": 1_000_000}}},
            f"{V}.latency: its buckets count 1000000 requests, more than the 1 requests",
        ),
        (
            {CANARY: {"requests": 1, "latency": [1]}},
            f"{V}.latency: must be an object of bucket bound → count, got list",
        ),
        (
            {CANARY: {"requests": 1, "latency": {"abc": 1}}},
            f'{V}.latency["abc"]: a bucket bound must be a number or "+Inf"',
        ),
        (
            {CANARY: {"requests": 1, "latency": {"nan": 1}}},
            f'{V}.latency["nan"]: a bucket bound must be a number or "+Inf"',
        ),
        (  # 0.1 in Arabic-Indic digits: float() reads it, JSON and Prometheus write no such bound
            {CANARY: {"requests": 1, "latency": {"\u0660.\u0661": 1}}},
            f'{V}.latency["\u0660.\u0661"]: a bucket bound must be a number or "+Inf"',
        ),
        (
            {CANARY: {"requests": 1, "latency": {"\uff11\uff10": 1}}},  # 10 in fullwidth digits
            f'{V}.latency["\uff11\uff10"]: a bucket bound must be a number or "+Inf"',
        ),
        (
            {CANARY: {"requests": 1, "latency": {"-Inf": 1}}},
            f'{V}.latency["-Inf"]: a bucket bound must be a number or "+Inf"',
        ),
        (
            {CANARY: {"requests": 1, "latency": {"0.3": 1}}},
            f'{V}.latency["0.3"]: 0.3 is not a bucket bound; the buckets end at 0.005, 0.01, 0.025, 0.05, 0.075, '
            '0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10 and "+Inf"',
        ),
        (
            {CANARY: {"requests": 2, "latency": {"1": 1, "1.0": 1}}},
            f'{V}.latency["1.0"]: the same bucket as "1"; give each bucket once',
        ),
        (
            {CANARY: {"requests": 1, "latency": {"0.1": -1}}},
            f'{V}.latency["0.1"]: a count must be a whole number of at least 0, got -1',
        ),
        (
            {CANARY: {"requests": 1, "latency": {"+Inf": 0.5}}},
            f'{V}.latency["+Inf"]: a count must be a whole number of at least 0, got 0.5',
        ),
        ({"v" * 121: {"requests": 1}}, f'versions["{"v" * 59}…"]: the version is 121 characters long; at most 120 fit'),
    ],
)
def test_a_bad_batch_raises_naming_the_field_and_stores_nothing(store: Store, versions: Any, message: str) -> None:
    # A good version first: the whole batch is checked before anything is stored.
    if isinstance(versions, dict):
        versions = {STABLE: {"requests": 10, "errors": 1, "latency": {"0.1": 10}}, **versions}
    with pytest.raises(BadInput) as caught:
        batch(store, versions)
    assert caught.value.message == message
    assert caught.value.exit_code == 2
    assert signal_rows(store) == 0


@pytest.mark.parametrize(
    ("service", "client", "message"),
    [
        ("", "c-1", "service is empty; name a service under services/"),
        ("s" * 121, "c-1", "service is 121 characters long; at most 120 fit"),
        ("checkout", " ", "client is empty; send the SDK instance's id"),
        ("checkout", "c" * 117, "client is 117 characters long; at most 116 fit"),
    ],
)
def test_a_bad_service_or_client_is_refused(store: Store, service: str, client: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        record_batch(store, SimulatedClock(NOW), service=service, client=client, versions=DOC_BATCH)
    assert caught.value.message == message
    assert signal_rows(store) == 0


def test_the_longest_client_fits_the_actor_column(store: Store) -> None:
    client = "c" * 116
    assert batch(store, {CANARY: {"requests": 1}}, client=client) == 1
    assert rows(store)[0][6] == f"sdk:{client}"


# --------------------------------------------------------------------------------- error rate


def test_the_error_rate_of_sdk_batches(store: Store, provider: PushProvider) -> None:
    batch(store, DOC_BATCH, at=ago(100))
    batch(store, {CANARY: {"requests": 80, "errors": 0}, STABLE: {"requests": 50}}, at=ago(10), client="c-2")
    batch(store, {"1.8.0": {"requests": 0, "errors": 0}})

    assert provider.query("error_rate", ERROR_RATE, CANARY, WINDOW) == Sample(3 / 200, 200.0)
    # No errors rows: no errors, a rate of 0 over the requests.
    assert provider.query("error_rate", ERROR_RATE, STABLE, WINDOW) == Sample(0.0, 50.0)
    # A batch without requests stored nothing: no data, not a rate of 0.
    assert provider.query("error_rate", ERROR_RATE, "1.8.0", WINDOW) == Sample(None, 0.0)


# ------------------------------------------------------------------------------------ latency


def test_latency_quantiles_from_the_pushed_buckets(store: Store, provider: PushProvider) -> None:
    batch(store, DOC_BATCH, at=ago(30))
    # Cumulative: 0.005 → 10, 0.01 → 50, 0.025 → 100, 0.05 → 112, 0.075 → 112, 0.1 → 117,
    # 0.25 → 119, 0.5 → 120, …, +Inf → 120.
    # p50: rank 60 lies in (0.01, 0.025] holding 50: 0.01 + 0.015 × (60 - 50) / 50 = 0.013.
    p50 = provider.query("p50", P50, CANARY, WINDOW)
    assert (p50.value, p50.count, p50.error) == (pytest.approx(0.013, rel=1e-12), 120.0, None)
    # p99: rank 118.8 lies in (0.1, 0.25] holding 2: 0.1 + 0.15 × (118.8 - 117) / 2 = 0.235.
    p99 = provider.query("p99", P99, CANARY, WINDOW)
    assert (p99.value, p99.count, p99.error) == (pytest.approx(0.235, rel=1e-12), 120.0, None)


def test_buckets_of_several_batches_add_up(store: Store, provider: PushProvider) -> None:
    batch(store, {CANARY: {"requests": 60, "latency": {"0.005": 10, "0.01": 20, "0.025": 30}}}, at=ago(50))
    batch(store, {CANARY: {"requests": 40, "latency": {"0.01": 20, "0.025": 20}}}, at=ago(40), client="c-2")
    batch(store, {CANARY: {"requests": 20, "latency": {"0.025": 20}}}, at=ago(30))
    # Σ per bucket 10, 40, 70 → cumulative 10, 50, 120; p50 = rank 60 in (0.01, 0.025]:
    # 0.01 + 0.015 × (60 - 50) / 70.
    p50 = provider.query("p50", P50, CANARY, WINDOW)
    assert (p50.value, p50.count) == (pytest.approx(0.01 + 0.015 * 10 / 70, rel=1e-12), 120.0)


def test_a_bucket_without_rows_is_an_empty_bucket_as_in_prometheus(store: Store, provider: PushProvider) -> None:
    # Every observation in (0.075, 0.1]; the empty buckets below it were left out of the batch.
    batch(store, {CANARY: {"requests": 10, "latency": {"0.1": 10}}}, at=ago(5))
    # p50 interpolates from 0.075 (the bucket below), not from 0: 0.075 + 0.025 × 5 / 10.
    p50 = provider.query("p50", P50, CANARY, WINDOW)
    assert (p50.value, p50.count) == (pytest.approx(0.0875, rel=1e-12), 10.0)


def test_observations_above_the_highest_bucket_report_the_highest_finite_bound(
    store: Store, provider: PushProvider
) -> None:
    batch(store, {CANARY: {"requests": 4, "latency": {"+Inf": 4}}}, at=ago(5))
    assert provider.query("p99", P99, CANARY, WINDOW) == Sample(10.0, 4.0)
    assert provider.query("p50", P50, CANARY, WINDOW) == Sample(10.0, 4.0)


def test_latency_reads_only_the_window(store: Store, provider: PushProvider) -> None:
    batch(store, {CANARY: {"requests": 100, "latency": {"5": 100}}}, at=ago(WINDOW + 100))
    batch(store, {CANARY: {"requests": 100, "latency": {"5": 100}}}, at=ago(WINDOW))  # at the start: outside
    assert provider.query("p99", P99, CANARY, WINDOW) == Sample(None, 0.0)
    batch(store, {CANARY: {"requests": 10, "latency": {"0.01": 10}}}, at=ago(WINDOW) + timedelta(microseconds=1))
    batch(store, {CANARY: {"requests": 10, "latency": {"0.025": 10}}}, at=NOW)
    batch(store, {CANARY: {"requests": 100, "latency": {"5": 100}}}, at=NOW + timedelta(microseconds=1))  # after now
    # Cumulative 0.01 → 10, 0.025 → 20: p50 = rank 10, the top of (0.005, 0.01]: 0.01.
    p50 = provider.query("p50", P50, CANARY, WINDOW)
    assert (p50.value, p50.count) == (pytest.approx(0.01, rel=1e-12), 20.0)
    # A 1-second window holds only the batch received now: p50 = 0.01 + 0.015 × 5 / 10.
    p50 = provider.query("p50", P50, CANARY, 1)
    assert (p50.value, p50.count) == (pytest.approx(0.0175, rel=1e-12), 10.0)


def test_latency_per_version_and_rows_without_a_version_count_for_every_version(
    store: Store, provider: PushProvider
) -> None:
    batch(store, {CANARY: {"requests": 10, "latency": {"1": 10}}, STABLE: {"requests": 10, "latency": {"0.1": 10}}})
    record_batch(
        store,
        SimulatedClock(NOW),
        service="search",
        client="c-9",
        versions={CANARY: {"requests": 5, "latency": {"10": 5}}},
    )
    # p99 of 10 observations in (0.75, 1]: 0.75 + 0.25 × 9.9 / 10; in (0.075, 0.1]: 0.075 + 0.025 × 9.9 / 10.
    canary = provider.query("p99", P99, CANARY, WINDOW)
    stable = provider.query("p99", P99, STABLE, WINDOW)
    assert (canary.value, canary.count) == (pytest.approx(0.9975, rel=1e-12), 10.0)
    assert (stable.value, stable.count) == (pytest.approx(0.09975, rel=1e-12), 10.0)
    assert provider.query("p99", P99, "9.9.9", WINDOW) == Sample(None, 0.0)

    # A bucket row naming no version counts for every version (as a count does); a row without
    # `le` sharing the histogram's name is no bucket and does not count.
    with store.transaction() as s:
        common = {"service": "checkout", "name": LATENCY, "at": NOW, "actor": "test", "note": ""}
        s.add(SignalEvent(version=None, value=10.0, le=0.005, **common))
        s.add(SignalEvent(version=CANARY, value=1000.0, le=None, **common))
    # Canary: 10 in (0, 0.005], 10 in (0.75, 1]; p50 = rank 10, the top of the first bucket.
    canary = provider.query("p50", P50, CANARY, WINDOW)
    assert (canary.value, canary.count) == (pytest.approx(0.005, rel=1e-12), 20.0)
    assert provider.query("p50", P50, "9.9.9", WINDOW) == Sample(0.0025, 10.0)


# ------------------------------------------------------------------------------- check_metric


def test_check_metric_accepts_latency_with_a_histogram_and_a_quantile() -> None:
    assert check_metric("p99", P99) is None
    assert metric_problem(PushProviderConfig(type="push"), "p99", P99) is None
    assert check_metric("p0", Metric(kind="latency", histogram=LATENCY, quantile=0.0)) is None


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            Metric(kind="latency", quantile=0.99),
            "metric 'p99' of kind latency has no `histogram`; the push provider needs `histogram` to name the "
            "pushed histogram it reads",
        ),
        (
            Metric(kind="latency", histogram=LATENCY),
            "metric 'p99' of kind latency has no `quantile`; the push provider needs the quantile to report, "
            "between 0 and 1 (0.99 for p99)",
        ),
        (
            Metric(kind="latency"),
            "metric 'p99' of kind latency has no `histogram`; the push provider needs `histogram` to name the "
            "pushed histogram it reads",
        ),
    ],
)
def test_latency_without_a_histogram_or_a_quantile_is_refused(
    provider: PushProvider, metric: Metric, message: str
) -> None:
    assert check_metric("p99", metric) == message
    assert metric_problem(PushProviderConfig(type="push"), "p99", metric) == message
    assert provider.query("p99", metric, CANARY, WINDOW) == Sample.failed(message)
