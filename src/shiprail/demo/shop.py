"""The demo's sample web service: one deployment, one code path per version, split by the shiprail SDK.

``GET /checkout?user=<id>`` asks the SDK which version serves this user (sticky: the same user gets
the same answer while the weight holds), runs that version's code path and records the outcome
with ``client.record`` so shiprail's push provider can judge the canary against the baseline.
Versions named with ``--bad`` are the broken change: slow, and failing a share of requests.

Run as ``python -m shiprail.demo.shop --serve URL --service NAME --stable VERSION [--bad VERSION]``
with the SDK key in ``SHIPRAIL_SDK_KEY``; it prints ``listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from shiprail import defaults
from shiprail.sdk import Client

# A healthy code path answers in 1-4 ms; the broken one adds this much and fails this share.
HEALTHY_SECONDS = (0.001, 0.004)
BROKEN_EXTRA_SECONDS = 0.3
BROKEN_ERROR_SHARE = 0.3


class Shop:
    """What the handlers share: the SDK client, the deployed stable version, the broken versions."""

    def __init__(self, client: Client, stable: str, bad: set[str]) -> None:
        self.client = client
        self.stable = stable
        self.bad = bad
        self.random = random.Random()
        self.lock = threading.Lock()

    def checkout(self, user: str | None) -> tuple[int, str]:
        """Serve one checkout: (HTTP status, version that served it)."""
        # Until shiprail has published a rollout, everyone is on the deployed stable version.
        version = self.client.version(user) or self.stable
        started = time.perf_counter()
        with self.lock:
            roll, pause = self.random.random(), self.random.uniform(*HEALTHY_SECONDS)
        ok = True
        if version in self.bad:
            pause += BROKEN_EXTRA_SECONDS
            ok = roll >= BROKEN_ERROR_SHARE
        time.sleep(pause)
        self.client.record(version, ok, time.perf_counter() - started)
        return (200 if ok else 500), version


def handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the load generator reuses its connections

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/health":
                self._send(200, {"ok": True, "revision": shop.client.revision})
                return
            if url.path != "/checkout":
                self._send(404, {"error": f"no route {url.path}"})
                return
            user = parse_qs(url.query).get("user", [None])[0]
            status, version = shop.checkout(user)
            self._send(status, {"version": version, "ok": status == 200})

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shiprail.demo.shop", description=__doc__)
    parser.add_argument("--serve", required=True, help="shiprail serve's base URL")
    parser.add_argument("--service", required=True)
    parser.add_argument("--stable", required=True, help="the version deployed before any rollout")
    parser.add_argument("--bad", action="append", default=[], help="a broken version (repeatable)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    key = os.environ.get(defaults.SDK_KEY_ENV, "")
    client = Client(args.serve, args.service, key)
    client.wait_ready(10)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Shop(client, args.stable, set(args.bad))))
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
