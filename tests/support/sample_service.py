"""A small HTTP service exposing Prometheus metrics, for provider, router and e2e tests.

One instance serves one version of an app:

- ``GET /<anything>`` is a request to the app: it waits the injected latency, then answers 200, or
  500 for the injected share of requests (deterministically: after n requests exactly
  ``floor(n × error_rate)`` failed, so short tests see the rate they asked for);
- ``GET /metrics`` is the Prometheus text endpoint (``http_requests_total{app,version,code}`` and
  the ``http_request_duration_seconds{app,version}`` histogram), not itself counted;
- ``POST /admin/inject`` with ``{"error_rate": 0.2, "latency_s": 0.3}`` changes the faults at run
  time (either key may be left out); ``GET /admin/inject`` shows them.

In-process: ``with SampleService("2.4.0") as svc: svc.url``. As its own process (for tests that
need a real process, or nginx/HAProxy upstreams)::

    python tests/support/sample_service.py --version 2.4.0 [--port 0] [--app checkout]

prints ``listening on http://127.0.0.1:PORT`` once it serves, then runs until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SampleService:
    """One version of a tiny app on 127.0.0.1, with fault injection and Prometheus metrics."""

    def __init__(self, version: str, *, app: str = "checkout", host: str = "127.0.0.1", port: int = 0) -> None:
        self.version = version
        self.app = app
        self.error_rate = 0.0
        self.latency_s = 0.0
        self._lock = threading.Lock()
        self._requests = 0
        self._errors = 0
        self.registry = CollectorRegistry()
        self.requests_total = Counter(
            "http_requests", "Requests served.", ["app", "version", "code"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request.",
            ["app", "version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # Create every series at 0 up front, so the first scrape already has them and rates
        # include the very first requests.
        for code in ("200", "500"):
            self.requests_total.labels(app, version, code)
        self.duration.labels(app, version)
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def inject(self, *, error_rate: float | None = None, latency_s: float | None = None) -> None:
        with self._lock:
            if error_rate is not None:
                if not 0 <= error_rate <= 1:
                    raise ValueError("error_rate must be between 0 and 1")
                self.error_rate = error_rate
                self._requests = self._errors = 0  # the new rate holds from now on
            if latency_s is not None:
                if latency_s < 0:
                    raise ValueError("latency_s must not be negative")
                self.latency_s = latency_s

    def _decide(self) -> tuple[bool, float]:
        """Whether this request fails, and how long it waits."""
        with self._lock:
            self._requests += 1
            fail = math.floor(self._requests * self.error_rate + 1e-9) > self._errors
            if fail:
                self._errors += 1
            return fail, self.latency_s

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Version", service.version)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(service.registry), CONTENT_TYPE_LATEST)
                    return
                if self.path == "/admin/inject":
                    body = {"error_rate": service.error_rate, "latency_s": service.latency_s}
                    self._send(200, json.dumps(body).encode(), "application/json")
                    return
                started = time.perf_counter()
                fail, latency = service._decide()
                if latency:
                    time.sleep(latency)
                code = 500 if fail else 200
                text = f"{service.app} {service.version}: {'injected failure' if fail else 'ok'}\n"
                service.duration.labels(service.app, service.version).observe(time.perf_counter() - started)
                service.requests_total.labels(service.app, service.version, str(code)).inc()
                self._send(code, text.encode())

            def do_POST(self) -> None:
                if self.path != "/admin/inject":
                    self._send(404, b"not found\n")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    doc = json.loads(self.rfile.read(length) or b"{}")
                    service.inject(error_rate=doc.get("error_rate"), latency_s=doc.get("latency_s"))
                except (ValueError, TypeError, AttributeError) as exc:
                    self._send(400, f"{exc}\n".encode())
                    return
                body = {"error_rate": service.error_rate, "latency_s": service.latency_s}
                self._send(200, json.dumps(body).encode(), "application/json")

        return Handler

    def start(self) -> SampleService:
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"sample-{self.version}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SampleService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A sample service version exposing Prometheus metrics.")
    parser.add_argument("--version", required=True)
    parser.add_argument("--app", default="checkout")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    args = parser.parse_args(argv)
    service = SampleService(args.version, app=args.app, port=args.port)
    service.inject(error_rate=args.error_rate, latency_s=args.latency)
    print(f"listening on {service.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        service.server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
