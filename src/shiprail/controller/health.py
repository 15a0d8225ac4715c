"""A controller's health and Prometheus metrics over HTTP (``shiprail controller --metrics-port``).

``GET /healthz`` answers 200 while the reconcile loop keeps passing — its last pass ended within
``stale_after_s`` (three polls, or one lease when that is longer) — and 503 once it has not: a
stuck loop (a hung database, a deadlock) is what a liveness probe must catch, since a stuck
controller keeps nobody else from its releases only until its leases run out. ``GET /metrics``
is the Prometheus text format of this controller's own registry.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shiprail.clock import Clock


class ControllerHealth:
    """What the loop reports after each pass, and the HTTP server that shows it."""

    def __init__(self, clock: Clock, holder: str, *, stale_after_s: float) -> None:
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
            "Releases whose reconcile raised (each a controller.error audit event).",
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
        self._lock = threading.Lock()

    def observe(self, started: datetime, ended: datetime, failed: int, held: int) -> None:
        """Record one pass of the loop: when it ran, how many releases failed, how many it holds."""
        with self._lock:
            self.last_pass, self.busy_until = ended, None
        self.passes.inc()
        self.errors.inc(failed)
        self.releases.set(held)
        self.last.set(ended.timestamp())
        self.duration.observe(max(0.0, (ended - started).total_seconds()))

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
