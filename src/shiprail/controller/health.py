"""A controller's health and Prometheus metrics over HTTP (``shiprail controller --metrics-port``).

``GET /healthz`` answers 200 while the reconcile loop keeps passing — its last pass ended within
``stale_after_s`` (three polls, or one lease when that is longer) — and 503 once it has not: a
stuck loop (a hung database, a deadlock) is what a liveness probe must catch, since a stuck
controller keeps nobody else from its releases only until its leases run out. ``GET /metrics``
is the Prometheus text format of this controller's own registry: its loop, and one set of series
per release it holds the lease on (as Argo Rollouts' ``rollout_info`` and Flagger's
``flagger_canary_weight``), so that the union over a team's controllers names every driven
release once.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from shiprail.clock import Clock
from shiprail.domain.contract import Verdict
from shiprail.domain.states import Action, Status

# Every verdict a trigger can get: each is a series of shiprail_release_trigger_verdict (1 or 0).
VERDICTS: tuple[str, ...] = get_args(Verdict)
# The moves that end a release, and the status each ends it in: the status label of
# shiprail_controller_releases_finished_total.
FINISHED = {Action.COMPLETE: Status.COMPLETE.value, Action.FINISH_ROLLBACK: Status.ROLLED_BACK.value}


@dataclass(frozen=True)
class TriggerGauge:
    """One rollback-contract trigger as the release's latest analysis judged it."""

    trigger: str
    verdict: str
    value: float | None  # the canary's measured value (None: no data)
    p_value: float | None  # a regression trigger's anytime-valid p-value
    dry_run: bool = False  # a dry-run trigger's: judged and reported, never acted on


@dataclass(frozen=True)
class ReleaseGauge:
    """A release the controller holds, as its store stood after the controller's last pass."""

    release: str
    service: str
    version: str
    baseline: str
    status: str
    step: int | None  # 1 for the first rollout step; None outside the steps (Verify)
    weight: float | None  # the canary weight the router last confirmed
    state_since: datetime
    last_analysis: datetime | None
    triggers: tuple[TriggerGauge, ...] = ()


class ReleaseCollector(Collector):
    """The per-release series: rebuilt at every scrape from the rows the loop last handed over.

    The loop reads the store, never the scrape: a slow or absent database cannot hang ``/metrics``.
    A release the controller lets go of (finished, or another controller's now) leaves the output.
    """

    def __init__(self) -> None:
        self._rows: tuple[ReleaseGauge, ...] = ()

    def update(self, rows: Sequence[ReleaseGauge]) -> None:
        self._rows = tuple(rows)  # one assignment: a scrape sees the old rows or the new ones

    def collect(self) -> Iterator[Metric]:
        rows = self._rows
        keys = ["release", "service"]
        info = GaugeMetricFamily(
            "shiprail_release_info",
            "A release this controller drives (1), with its versions and lifecycle status.",
            labels=[*keys, "version", "baseline", "status"],
        )
        step = GaugeMetricFamily(
            "shiprail_release_step", "The rollout step the release is at (1 = the first).", labels=keys
        )
        weight = GaugeMetricFamily(
            "shiprail_release_canary_weight", "The canary weight (%) the router last confirmed.", labels=keys
        )
        since = GaugeMetricFamily(
            "shiprail_release_state_since_timestamp_seconds",
            "When the release entered its status (Unix time).",
            labels=keys,
        )
        analysed = GaugeMetricFamily(
            "shiprail_release_last_analysis_timestamp_seconds",
            "When the release's rollback contract was last analysed (Unix time).",
            labels=keys,
        )
        verdict = GaugeMetricFamily(
            "shiprail_release_trigger_verdict",
            "1 for the verdict the latest analysis gave each trigger of the rollback contract, 0 for the others; "
            'dry_run="true" for a trigger that is only reported (its fail rolls nothing back).',
            labels=[*keys, "trigger", "verdict", "dry_run"],
        )
        value = GaugeMetricFamily(
            "shiprail_release_trigger_value",
            "The canary's value each trigger last measured.",
            labels=[*keys, "trigger"],
        )
        p_value = GaugeMetricFamily(
            "shiprail_release_trigger_p_value",
            "A regression trigger's anytime-valid p-value (it fails when this reaches its alpha).",
            labels=[*keys, "trigger"],
        )
        for r in rows:
            key = [r.release, r.service]
            info.add_metric([*key, r.version, r.baseline, r.status], 1)
            since.add_metric(key, r.state_since.timestamp())
            if r.step is not None:
                step.add_metric(key, r.step)
            if r.weight is not None:
                weight.add_metric(key, r.weight)
            if r.last_analysis is not None:
                analysed.add_metric(key, r.last_analysis.timestamp())
            seen: set[str] = set()
            for t in r.triggers:
                if t.trigger in seen:
                    # A trigger named "probe X" beside a probe X: one series per name, or the
                    # scrape would carry the same series twice.
                    continue
                seen.add(t.trigger)
                # A label, not a series of its own: alert rules on a rollback tell the two apart with
                # dry_run="false", and a dashboard of a trigger on trial reads the same series.
                dry = "true" if t.dry_run else "false"
                for name in VERDICTS:
                    verdict.add_metric([*key, t.trigger, name, dry], 1 if t.verdict == name else 0)
                if t.value is not None and math.isfinite(t.value):
                    value.add_metric([*key, t.trigger], t.value)
                if t.p_value is not None:
                    p_value.add_metric([*key, t.trigger], t.p_value)
        yield from (info, step, weight, since, analysed, verdict, value, p_value)


class ControllerHealth:
    """What the loop reports after each pass, and the HTTP server that shows it."""

    def __init__(self, clock: Clock, holder: str, *, stale_after_s: float, services: Iterable[str] = ()) -> None:
        self.clock, self.holder, self.stale_after_s = clock, holder, stale_after_s
        self.started = clock.now()
        self.last_pass: datetime | None = None
        # Until when a router call or an analysis under way may run (its timeouts and a margin):
        # waiting on it is no stuck loop. Cleared when the pass ends.
        self.busy_until: datetime | None = None
        self.registry = CollectorRegistry()
        self.passes = Counter("shiprail_controller_passes", "Reconcile passes completed.", registry=self.registry)
        self.errors = Counter(
            "shiprail_controller_release_errors",
            "Releases whose reconcile raised (a controller.error audit event each, or a store outage).",
            registry=self.registry,
        )
        self.releases = Gauge(
            "shiprail_controller_releases", "Releases this controller holds the lease on.", registry=self.registry
        )
        self.last = Gauge(
            "shiprail_controller_last_pass_timestamp_seconds",
            "When the last reconcile pass ended (Unix time).",
            registry=self.registry,
        )
        self.duration = Histogram(
            "shiprail_controller_pass_seconds", "How long one reconcile pass took.", registry=self.registry
        )
        self.finished = Counter(
            "shiprail_controller_releases_finished",
            "Releases this controller took to complete or to rolled_back (status), per service.",
            ["service", "status"],
            registry=self.registry,
        )
        # The project's services count from 0 before the first scrape, not only once this
        # controller has held one of their releases: a replica that takes over a release another
        # one was rolling back (it died) may end it in its first pass, and a counter born at 1 is
        # a jump Prometheus' increase() never sees, so the rolled-back alert would stay silent.
        self._count_finished_from_zero(services)
        # Audit anchors (shiprail.yaml's audit.anchors): absent until this controller has read or
        # written the log, so a project without anchors exports none.
        self.anchor_seq = Gauge(
            "shiprail_audit_last_anchor_seq",
            "The audit chain seq the newest anchor in the anchor log records, as this controller last saw it.",
            registry=self.registry,
        )
        self.anchor_time = Gauge(
            "shiprail_audit_last_anchor_timestamp_seconds",
            "When the newest anchor in the anchor log was taken (Unix time), as this controller last saw it.",
            registry=self.registry,
        )
        self.anchor_failures = Counter(
            "shiprail_audit_anchor_failures",
            "Anchors due that could not be written (the chain, the log, the file, a lock or the store), by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.held = ReleaseCollector()
        self.registry.register(self.held)
        self._lock = threading.Lock()

    def _count_finished_from_zero(self, services: Iterable[str]) -> None:
        """Create each service's finished counters at 0 (a no-op for those that exist)."""
        for service in services:
            for status in FINISHED.values():
                self.finished.labels(service, status)

    def observe(
        self, started: datetime, ended: datetime, failed: int, held: int, rows: Sequence[ReleaseGauge] | None = None
    ) -> None:
        """Record one pass of the loop: when it ran, how many releases failed, how many it holds and
        (when the store could be read) how those stand."""
        with self._lock:
            self.last_pass, self.busy_until = ended, None
        self.passes.inc()
        self.errors.inc(failed)
        self.releases.set(held)
        if rows is not None:
            self.held.update(rows)
            # Each service's counters exist at 0 before its first release ends: Prometheus'
            # increase() cannot see the jump of a series that is born at 1. (A service added to
            # the project after the start is covered from its first held release.)
            self._count_finished_from_zero({r.service for r in rows})
        self.last.set(ended.timestamp())
        self.duration.observe(max(0.0, (ended - started).total_seconds()))

    def anchored(self, seq: int, at: datetime) -> None:
        """The anchor log's newest anchor, written or found by this controller."""
        self.anchor_seq.set(seq)
        self.anchor_time.set(at.timestamp())

    def anchor_failed(self, kind: str) -> None:
        """An anchor due could not be written (``kind``: chain, log, write, locked, store, …)."""
        self.anchor_failures.labels(kind).inc()

    def finish(self, service: str, action: Action) -> None:
        """Count a release of ``service`` ended by ``action`` (no-op for a move that ends none)."""
        if action in FINISHED:
            self.finished.labels(service, FINISHED[action]).inc()

    def expect(self, until: datetime) -> None:
        """The loop starts a call that may take until ``until``: healthy until then, pass or not."""
        with self._lock:
            self.busy_until = until if self.busy_until is None else max(self.busy_until, until)

    def status(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the /healthz body)."""
        now = self.clock.now()
        with self._lock:
            last, busy = self.last_pass, self.busy_until
        # Before the first pass ends, the start counts: a loop slow to make its first pass is unhealthy too.
        since = (now - (last or self.started)).total_seconds()
        ok = since <= self.stale_after_s or (busy is not None and now <= busy)
        body = {
            "ok": ok,
            "holder": self.holder,
            "last_pass": None if last is None else last.isoformat(),
            "seconds_since": round(since, 3),
            "stale_after_s": self.stale_after_s,
        }
        return ok, body

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        """Start answering on ``host:port`` (0: any free port) in a daemon thread; ``shutdown()`` stops it."""
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                # Some probes and load balancers check with HEAD: the same status, no body.
                self._answer(body=False)

            def _answer(self, *, body: bool) -> None:
                if self.path == "/healthz":
                    ok, doc = health.status()
                    self._send(200 if ok else 503, "application/json", json.dumps(doc).encode() + b"\n", body)
                elif self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(health.registry), body)
                else:
                    self._send(404, "application/json", b'{"detail": "GET /healthz or /metrics"}\n', body)

            def _send(self, code: int, kind: str, payload: bytes, body: bool) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass  # a probe every few seconds is not news

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="shiprail-controller-health", daemon=True).start()
        return server
