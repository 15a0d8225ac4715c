"""The demo's webhook receiver: what a team's chat bridge or status page would run, verifying signatures."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shiprail import defaults
from shiprail.notifiers.channels import verify_signature


class Receiver:
    """Accepts shiprail's signed webhooks on 127.0.0.1; keeps the ones whose HMAC checks out."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/shiprail"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[tuple[str, str]]:
        """(release, event) of every verified delivery, in arrival order."""
        with self._lock:
            return [(str(b.get("release_id")), str(b.get("event"))) for b in self.received]

    def headlines(self) -> list[str]:
        """The one-line text of every verified delivery, in arrival order."""
        with self._lock:
            return [str(b.get("text")) for b in self.received]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify_signature(
                    receiver.secret,
                    self.headers.get(defaults.NOTIFY_TIMESTAMP_HEADER),
                    body,
                    self.headers.get(defaults.NOTIFY_SIGNATURE_HEADER),
                    now=datetime.now(UTC),
                )
                with receiver._lock:
                    if ok:
                        receiver.received.append(json.loads(body))
                    else:
                        receiver.refused += 1
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
