"""The push provider on a real store (SQLite and PostgreSQL), on a simulated clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.domain.states import Status
from shiprail.errors import BadInput
from shiprail.providers import PushProviderConfig, build_provider
from shiprail.providers.push import PushProvider, count_signals, record_signal
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import Release, SignalEvent

NOW = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
WINDOW = 300
CANARY, STABLE = "2.4.0", "2.3.1"

ERROR_RATE = Metric(kind="error_rate", counter="http_requests_total", errors="http_errors_total")
RATIO = Metric(kind="ratio", counter="checkouts_started", errors="checkouts_paid")
COUNT = Metric(kind="count", counter="orders")
RATE = Metric(kind="rate", counter="orders")
GAUGE = Metric(kind="gauge", gauge="queue_depth")
LATENCY = Metric(kind="latency", histogram="http_request_duration_seconds", quantile=0.99)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def push(
    store: Store,
    name: str,
    value: float,
    at: datetime,
    version: str | None = CANARY,
    service: str = "checkout",
    actor: str = "app",
) -> None:
    """One signal received at ``at``."""
    record_signal(store, SimulatedClock(at), service=service, name=name, value=value, version=version, actor=actor)


@pytest.fixture
def provider(store: Store) -> PushProvider:
    return PushProvider(store, SimulatedClock(NOW), "checkout")


def signal_rows(store: Store) -> int:
    with store.transaction() as s:
        return s.execute(sa.select(sa.func.count()).select_from(SignalEvent)).scalar_one()


def chain(store: Store) -> list[audit.EventRow]:
    with store.transaction() as s:
        return list(audit.rows(s))


def chain_ok(store: Store) -> bool:
    with store.transaction() as s:
        seq, digest = audit.head(s)
        return audit.verify(audit.rows(s), head_seq=seq, head_hash=digest).ok


def add_release(store: Store, release_id: str, status: Status, created_at: datetime, service: str = "checkout") -> None:
    """A release row in ``status`` (only what attributing a signal reads matters)."""
    with store.transaction() as s:
        s.add(
            Release(
                id=release_id,
                service=service,
                version=CANARY,
                baseline=STABLE,
                owner="alice",
                risk="high",
                status=status.value,
                step=None,
                paused_from=None,
                plan_file="releases/x.yaml",
                plan_text="",
                resolved="{}",
                plan_hash="0" * 64,
                contract_hash="0" * 64,
                frozen_at=None,
                state_since=created_at,
                created_at=created_at,
                revision=0,
            )
        )


# ------------------------------------------------------------------------------- error rate


def test_error_rate_sums_the_window_and_its_boundaries_are_exact(store: Store, provider: PushProvider) -> None:
    requests, errors = "http_requests_total", "http_errors_total"
    push(store, requests, 1000, ago(WINDOW + 1))  # before the window
    push(store, requests, 100, ago(WINDOW))  # exactly at now - window: outside
    push(store, errors, 50, ago(WINDOW))
    push(store, requests, 40, ago(WINDOW) + timedelta(microseconds=1))  # just inside
    push(store, errors, 2, ago(200))
    push(store, requests, 60, NOW)  # exactly now: inside
    push(store, errors, 3, NOW)
    push(store, errors, 500, NOW + timedelta(microseconds=1))  # after now: outside
    push(store, requests, 200, ago(10), version=STABLE)
    push(store, errors, 2, ago(10), version=STABLE)

    assert provider.query("error_rate", ERROR_RATE, CANARY, WINDOW) == Sample(0.05, 100.0)
    assert provider.query("error_rate", ERROR_RATE, STABLE, WINDOW) == Sample(0.01, 200.0)
    # A version nobody pushed for, or a window the rows are all outside of: no data.
    assert provider.query("error_rate", ERROR_RATE, "9.9.9", WINDOW) == Sample(None, 0.0)
    assert provider.query("error_rate", ERROR_RATE, CANARY, 1) == Sample(0.05, 60.0)


def test_ratio_and_rows_without_a_version_count_for_every_version(store: Store, provider: PushProvider) -> None:
    push(store, "checkouts_started", 8, ago(60), version=None)
    push(store, "checkouts_started", 2, ago(60), version=CANARY)
    push(store, "checkouts_paid", 5, ago(30), version=CANARY)
    push(store, "checkouts_paid", 4, ago(30), version=STABLE)
    push(store, "checkouts_started", 10, ago(30), service="search", version=CANARY)  # another service

    assert provider.query("paid", RATIO, CANARY, WINDOW) == Sample(0.5, 10.0)
    assert provider.query("paid", RATIO, STABLE, WINDOW) == Sample(0.5, 8.0)


def test_no_rows_at_all_is_no_data_for_an_error_rate(provider: PushProvider) -> None:
    assert provider.query("error_rate", ERROR_RATE, CANARY, WINDOW) == Sample(None, 0.0)


# --------------------------------------------------------------------------- count, rate, gauge


def test_count_and_rate(store: Store, provider: PushProvider) -> None:
    push(store, "orders", 30, ago(WINDOW))  # outside
    push(store, "orders", 45, ago(200))
    push(store, "orders", 15, ago(1))
    push(store, "orders", 7, ago(1), version=STABLE)

    assert provider.query("orders", COUNT, CANARY, WINDOW) == Sample(60.0, 60.0)
    assert provider.query("orders", RATE, CANARY, WINDOW) == Sample(0.2, 60.0)
    assert provider.query("orders", COUNT, STABLE, WINDOW) == Sample(7.0, 7.0)


def test_count_and_rate_without_rows_are_zero_with_count_zero(provider: PushProvider) -> None:
    assert provider.query("orders", COUNT, CANARY, WINDOW) == Sample(0.0, 0.0)
    assert provider.query("orders", RATE, CANARY, WINDOW) == Sample(0.0, 0.0)


def test_gauge_is_the_latest_value_in_the_window(store: Store, provider: PushProvider) -> None:
    assert provider.query("queue", GAUGE, CANARY, WINDOW) == Sample(None)
    push(store, "queue_depth", 9, ago(WINDOW + 5))
    assert provider.query("queue", GAUGE, CANARY, WINDOW) == Sample(None)  # only outside the window
    push(store, "queue_depth", 12, ago(100))
    push(store, "queue_depth", 4, ago(20))
    push(store, "queue_depth", 5, ago(20))  # same time, stored later: the latest
    push(store, "queue_depth", 99, ago(5), version=STABLE)

    assert provider.query("queue", GAUGE, CANARY, WINDOW) == Sample(5.0)
    assert provider.query("queue", GAUGE, STABLE, WINDOW) == Sample(99.0)


# ------------------------------------------------------------------------------ failed samples


def test_latency_without_pushed_buckets_is_no_data(provider: PushProvider) -> None:
    # Latency from pushed buckets: tests/integration/providers/test_push_histograms.py.
    assert provider.query("p99", LATENCY, CANARY, WINDOW) == Sample(None, 0.0)


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        (Metric(kind="error_rate", counter="http_requests_total"), "errors"),
        (Metric(kind="ratio", errors="checkouts_paid"), "counter"),
        (Metric(kind="count"), "counter"),
        (Metric(kind="rate", gauge="orders"), "counter"),
        (Metric(kind="gauge", counter="queue_depth"), "gauge"),
    ],
)
def test_a_missing_field_is_a_failed_sample_naming_the_metric_and_the_field(
    provider: PushProvider, metric: Metric, field: str
) -> None:
    assert provider.query("m1", metric, CANARY, WINDOW) == Sample.failed(
        f"metric 'm1' of kind {metric.kind} has no `{field}`; the push provider needs `{field}` to name the "
        "pushed signal it reads"
    )


def test_a_window_of_zero_is_a_failed_sample(provider: PushProvider) -> None:
    assert provider.query("orders", COUNT, CANARY, 0) == Sample.failed(
        "metric 'orders': the window must be longer than 0 seconds, got 0"
    )


# ----------------------------------------------------------------------------------- counting


def test_count_signals_counts_rows_without_a_version_for_every_version(store: Store) -> None:
    complaint = "customer_complaint"
    push(store, complaint, 1, ago(100), version=None)
    push(store, complaint, 1, ago(50), version=None)
    push(store, complaint, 3, ago(40), version=CANARY)
    push(store, complaint, 5, ago(30), version=STABLE)
    push(store, complaint, 100, ago(30), version=None, service="search")  # another service
    push(store, "alert", 100, ago(30), version=None)  # another name
    push(store, complaint, 100, ago(WINDOW), version=None)  # at `since`: outside

    def count(version: str | None) -> float:
        return count_signals(store, service="checkout", name=complaint, since=ago(WINDOW), until=NOW, version=version)

    assert count(CANARY) == 5.0
    assert count(STABLE) == 7.0
    assert count("9.9.9") == 2.0
    assert count(None) == 10.0  # no version asked for: every row of the service
    assert count_signals(store, service="checkout", name=complaint, since=ago(50), until=ago(40)) == 3.0
    assert count_signals(store, service="nope", name=complaint, since=ago(WINDOW), until=NOW) == 0.0


# ---------------------------------------------------------------------------------- recording


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "--count must be a finite number above 0, got 0"),
        (-1.5, "--count must be a finite number above 0, got -1.5"),
        (float("nan"), "--count must be a finite number above 0, got nan"),
        (float("inf"), "--count must be a finite number above 0, got inf"),
    ],
)
def test_a_value_that_is_not_above_zero_is_refused_and_nothing_is_stored(
    store: Store, value: float, message: str
) -> None:
    with pytest.raises(BadInput) as caught:
        record_signal(store, SimulatedClock(NOW), service="checkout", name="customer_complaint", value=value, actor="s")
    assert caught.value.message == message
    assert caught.value.exit_code == 2
    assert signal_rows(store) == 0
    assert chain(store) == []


def test_a_bad_name_is_refused_and_nothing_is_stored(store: Store) -> None:
    with pytest.raises(BadInput) as caught:
        record_signal(store, SimulatedClock(NOW), service="checkout", name="9 lives", actor="s")
    assert caught.value.message == (
        "NAME '9 lives' is not a signal name; use a letter or _ first, then letters, digits, _ : . or - "
        "(e.g. customer_complaint)"
    )
    assert signal_rows(store) == 0


def test_recording_stores_the_row_and_an_audit_event_for_the_release_in_progress(store: Store) -> None:
    add_release(store, "checkout-2.2.0", Status.COMPLETE, ago(9000))
    add_release(store, "checkout-2.3.0", Status.PAUSED, ago(8000))
    add_release(store, "checkout-2.4.0", Status.ROLLING_OUT, ago(7000))
    add_release(store, "checkout-2.5.0", Status.PLANNED, ago(10))  # newer, but not in progress
    add_release(store, "search-1.1.0", Status.VERIFYING, ago(5), service="search")

    record = record_signal(
        store,
        SimulatedClock(NOW),
        service="checkout",
        name="customer_complaint",
        actor="support-desk",
        note="ticket #4411: card declined twice",
    )
    assert record.to_json() == {
        "id": 1,
        "service": "checkout",
        "version": None,
        "name": "customer_complaint",
        "value": 1.0,
        "at": NOW.isoformat(),
        "actor": "support-desk",
        "note": "ticket #4411: card declined twice",
        "release_id": "checkout-2.4.0",
    }
    with store.transaction() as s:
        row = s.execute(sa.select(SignalEvent)).scalar_one()
        assert (row.id, row.service, row.version, row.name, row.value, row.at, row.actor, row.note) == (
            1,
            "checkout",
            None,
            "customer_complaint",
            1.0,
            NOW,
            "support-desk",
            "ticket #4411: card declined twice",
        )
    [event] = chain(store)
    assert (event.seq, event.at, event.actor, event.kind, event.release_id) == (
        1,
        NOW,
        "support-desk",
        "signal.received",
        "checkout-2.4.0",
    )
    assert json.loads(event.payload) == {
        "signal_id": 1,
        "service": "checkout",
        "version": None,
        "name": "customer_complaint",
        "value": 1.0,
        "note": "ticket #4411: card declined twice",
    }

    # A service with no release in progress: the event names none. The chain still verifies.
    later = record_signal(
        store, SimulatedClock(NOW), service="billing", name="alert", value=2, version="7.0.1", actor="pager"
    )
    assert (later.id, later.release_id, later.value) == (2, None, 2.0)
    events = chain(store)
    assert [(e.seq, e.kind, e.release_id) for e in events] == [
        (1, "signal.received", "checkout-2.4.0"),
        (2, "signal.received", None),
    ]
    assert json.loads(events[1].payload) == {
        "signal_id": 2,
        "service": "billing",
        "version": "7.0.1",
        "name": "alert",
        "value": 2.0,
    }
    assert chain_ok(store)


def test_the_newest_release_in_progress_gets_the_signal(store: Store) -> None:
    add_release(store, "checkout-2.4.0", Status.ROLLING_BACK, ago(7000))
    add_release(store, "checkout-2.4.1", Status.VERIFYING, ago(60))
    record = record_signal(store, SimulatedClock(NOW), service="checkout", name="alert", actor="pager")
    assert record.release_id == "checkout-2.4.1"


# ------------------------------------------------------------------------------------ building


def test_build_provider_needs_the_store_and_the_service(store: Store) -> None:
    config = PushProviderConfig(type="push")
    clock = SimulatedClock(NOW)
    with pytest.raises(ValueError, match="the push provider needs the store and the service"):
        build_provider(config, clock=clock)
    with pytest.raises(ValueError, match="the push provider needs the store and the service"):
        build_provider(config, clock=clock, store=store)
    built = build_provider(config, clock=clock, store=store, service="checkout")
    assert isinstance(built, PushProvider)
    push(store, "orders", 3, ago(1))
    assert built.query("orders", COUNT, CANARY, WINDOW) == Sample(3.0, 3.0)
