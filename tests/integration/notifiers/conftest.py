"""Real receivers for the notifier: HTTP (Slack-compatible and signed webhooks), SMTP, a dead and a hung port.

Also a release of the example plan driven by the controller with a fake router and provider (as in
tests/integration/controller) on a simulated clock.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller as SmtpController
from aiosmtpd.smtp import MISSING, Envelope, Session

from shiprail.clock import Clock, SimulatedClock
from shiprail.controller import Controller
from shiprail.domain.contract import Sample
from shiprail.notifiers import EmailChannel, SlackChannel, WebhookChannel
from shiprail.notifiers.channels import verify_signature
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.schema.resolved import ResolvedRelease
from shiprail.schema.service import Metric
from shiprail.store.db import Store
from tests.support.overrides import override
from tests.support.samples import HEALTHY_LATENCY

PLAN = Path("releases/checkout-2.4.0.yaml")
REASON = "Carol is out sick; Bob reviewed the whole diff twice"
SECRET = "whsec-notifier-tests"
SLACK_ENV = "TEST_SLACK_URL"
SECRET_ENV = "TEST_WEBHOOK_SECRET"


def free_port() -> int:
    """A port nothing listens on (bound, then closed: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------- HTTP


@dataclass
class Received:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A local HTTP endpoint: records each POST, checks its signature when given a secret, answers ``statuses``."""

    clock: Clock
    secret: str | None = None
    statuses: list[int] = field(default_factory=list)  # answered in turn; 200 once they run out
    retry_after: str | None = None  # sent as Retry-After with every answer that is not 200
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = None
                if receiver.secret is not None:
                    ok = verify_signature(
                        receiver.secret,
                        headers.get("x-shiprail-timestamp"),
                        body,
                        headers.get("x-shiprail-signature"),
                        now=receiver.clock.now(),
                    )
                receiver.requests.append(Received(self.path, headers, body, ok))
                if receiver.delay_s:
                    threading.Event().wait(receiver.delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = b"ok" if status == 200 else b"no_service"
                self.send_response(status)
                if status != 200 and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/shiprail"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HungServer:
    """Accepts TCP connections and never says a word (an overloaded or wedged endpoint)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/shiprail"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def receivers(svc: Releases) -> Iterator[tuple[HttpReceiver, HttpReceiver]]:
    """(Slack-compatible, signed webhook) receivers on 127.0.0.1; signatures checked on the test's clock."""
    slack = HttpReceiver(svc.clock)
    hook = HttpReceiver(svc.clock, secret=SECRET)
    yield slack, hook
    slack.close()
    hook.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


# ------------------------------------------------------------------------------------------- SMTP


class Mailbox:
    """An aiosmtpd handler keeping what it receives; it answers RCPT TO for an address in ``refuse`` with its line.

    ``quit_answer`` replaces the answer to QUIT.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: dict[str, str] = {}  # address -> the answer, e.g. "550 5.1.1 no such user"
        self.quit_answer: str | None = None  # what QUIT is answered instead of "221 Bye"

    async def handle_QUIT(self, server: Any, session: Session, envelope: Envelope) -> Any:
        return MISSING if self.quit_answer is None else self.quit_answer

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


@dataclass
class Smtp:
    """A running local SMTP server."""

    port: int
    mailbox: Mailbox


def start_smtp(**options: Any) -> tuple[SmtpController, Smtp]:
    mailbox = Mailbox()
    port = free_port()
    controller = SmtpController(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller, Smtp(port, mailbox)


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    controller, server = start_smtp()
    yield server
    controller.stop()


# ------------------------------------------------------------------------------------------- channels


def channels(slack_url_env: str = SLACK_ENV, hook_url: str = "", smtp_port: int = 25) -> dict[str, Any]:
    """The example policy's three channels, pointed at the test's receivers."""
    return {
        "releases-slack": SlackChannel(type="slack", url_env=slack_url_env),
        "status-page": WebhookChannel(type="webhook", url=hook_url, secret_env=SECRET_ENV),
        "oncall-email": EmailChannel(
            type="email", to=["oncall@example.com"], smtp_port=smtp_port, sender="shiprail@example.com"
        ),
    }


# ------------------------------------------------------------------------------------------- releases


class FakeRouter:
    def __init__(self) -> None:
        self.weight = 0.0
        self.calls: list[float] = []

    def set_weight(self, weight: float) -> None:
        self.calls.append(weight)
        self.weight = weight

    def current_weight(self) -> float:
        return self.weight


class Metrics:
    """Healthy until ``bad`` is set; then half of the canary's requests fail."""

    def __init__(self, clock: Clock, canary: str) -> None:
        self.clock, self.canary = clock, canary
        self.bad = False

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        if name == "error_rate":
            return Sample(0.5 if self.bad and version == self.canary else 0.001, 1000)
        return HEALTHY_LATENCY


@pytest.fixture
def svc(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> Releases:
    """Releases over the test's store and a simulated clock that starts at the wall clock's now."""
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    # As in tests/integration/controller: no probes, an analysis every 10 minutes.
    text = text[: text.index("  probes:")].replace("rollout:\n", "rollout:\n  analysis_interval: 10m\n")
    PLAN.write_text(text)
    start = datetime.now(UTC).replace(microsecond=0)
    return Releases(store, SimulatedClock(start), open_project(project).policy)


def start_release(svc: Releases, version: str = "2.4.0") -> str:
    """A release of the example plan (at ``version``) through its Stage gates by override, at its first step.

    Another version is a release of a copy of checkout (``checkout-2-4-1``): one release of a
    service rolls out at a time.
    """
    plan = PLAN
    if version != "2.4.0":
        name = f"checkout-{version.replace('.', '-')}"
        service = Path("services/checkout.yaml").read_text()
        Path(f"services/{name}.yaml").write_text(service.replace("name: checkout\n", f"name: {name}\n", 1))
        plan = PLAN.with_name(f"{name}-{version}.yaml")
        text = PLAN.read_text().replace('version: "2.4.0"', f'version: "{version}"')
        plan.write_text(text.replace("service: checkout\n", f"service: {name}\n", 1))
    rid = svc.create(check_plan_file(plan), "alice").id
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Load tests now run in the pipeline.")
    return rid


def controller(svc: Releases, metrics: Callable[[ResolvedRelease], Metrics], **kw: Any) -> Controller:
    router = FakeRouter()
    return Controller(svc, routers=lambda r: router, providers=metrics, **kw)


@contextlib.contextmanager
def running(target: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run ``target(stop)`` in a thread for the block; stop and join it after."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the thread did not stop"
