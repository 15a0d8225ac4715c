"""A real-component stack for end-to-end rollout tests, all on 127.0.0.1.

One ``Stack`` is, each in its own process started from a temporary directory:

- two sample service versions of ``checkout`` (``tests/support/sample_service.py``): stable
  ``2.3.1`` and canary ``2.4.0``, with Prometheus metrics and run-time fault injection;
- a Prometheus server scraping both every second, on fresh storage;
- a front router: nginx (its main configuration includes ``conf.d/*.conf``, where shiprail's
  ``NginxRouter`` owns the include file defining ``checkout_upstream``) or HAProxy (backend
  ``checkout`` with servers ``stable`` and ``canary``, runtime API on a unix admin socket).

Every process is stopped by its PID in ``Stack.stop()``, also when starting the stack failed half
way. ``Load`` sends steady traffic through the router and records which version answered;
``write_project`` writes a shiprail project (policy, service, release plan) aimed at a stack.

    stack = start_stack(tmp / "stack", "nginx")      # waits for Prometheus's first scrape
    try:
        root_plan = write_project(tmp / "project", stack)
        with Load(stack.url) as load:
            ...
    finally:
        stack.stop()

The fixtures in ``tests/e2e/conftest.py`` do the stopping for tests.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from shiprail.durations import format_duration
from shiprail.providers import PrometheusProviderConfig
from shiprail.routers import HaproxyRouterConfig, NginxRouterConfig, Router, build_router
from shiprail.routers import haproxy as haproxy_router
from shiprail.routers import nginx as nginx_router
from tests.support.processes import NGINX_CONF, free_port, require_binary, stop, wait_for_port
from tests.support.service_process import Version, start_version

RouterKind = Literal["nginx", "haproxy"]

APP = "checkout"
SERVICE = "checkout"
STABLE = "2.3.1"
CANARY = "2.4.0"
UPSTREAM = "checkout_upstream"
"""The nginx upstream shiprail's include file defines and the main configuration proxies to."""
BACKEND = "checkout"
"""The HAProxy backend holding the servers ``stable`` and ``canary``."""
NO_VERSION = "-"
"""What ``Load`` records as the version of a response without ``X-Version`` (a router's own error page)."""

AnyProc = subprocess.Popen[bytes] | subprocess.Popen[str]


# --------------------------------------------------------------------------------- Prometheus


@dataclass
class PrometheusProcess:
    """A Prometheus server scraping the stack's two versions every second."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path

    def query(self, promql: str, timeout_s: float = 5) -> list[dict[str, Any]]:
        """The result list of an instant query (``[]`` for an empty vector); raises on an API error."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=timeout_s)
        doc = response.json()
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {doc.get('errorType')}: {doc.get('error')}")
        result = doc["data"]["result"]
        if not isinstance(result, list):  # a scalar or string: wrap it like one series
            return [{"metric": {}, "value": result}]
        return result


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sample
    static_configs:
      - targets: [{targets}]
"""


def start_prometheus(
    workdir: Path,
    targets: Sequence[str],
    on_start: Callable[[AnyProc], None],
    timeout_s: float = 30,
    rule_files: Sequence[Path] = (),
) -> PrometheusProcess:
    """Prometheus on a free port with fresh storage in ``workdir``; returns once ``/-/ready`` answers.

    ``rule_files``: alerting and recording rules it evaluates every second.
    """
    binary = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "prometheus.yml"
    text = PROMETHEUS_CONFIG.format(targets=", ".join(f"'{t}'" for t in targets))
    if rule_files:
        text += "rule_files:\n" + "".join(f"  - '{path}'\n" for path in rule_files)
    config.write_text(text, encoding="utf-8")
    data_dir = workdir / "data"
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    on_start(proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return PrometheusProcess(url, proc, log, data_dir)
        time.sleep(0.1)
    raise RuntimeError(f"prometheus was not ready within {timeout_s:g}s: {log.read_text(errors='replace')[-2000:]}")


# ------------------------------------------------------------------------------------- routers


@dataclass
class NginxFront:
    """nginx in the foreground with its own prefix, pid file and error log."""

    binary: str
    prefix: Path
    conf: Path
    error_log: Path
    include_file: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def settings(self, stable: str, canary: str) -> dict[str, str]:
        """The ``router:`` section of the service file, as written in YAML."""
        return nginx_settings(self.binary, self.prefix, stable, canary)


def nginx_settings(binary: str, prefix: Path, stable: str, canary: str) -> dict[str, str]:
    """``router:`` settings for the nginx laid out by ``start_nginx`` in ``prefix``."""
    return {
        "type": "nginx",
        "include_file": str(prefix / "conf.d" / "checkout.conf"),
        "upstream": UPSTREAM,
        "stable": stable,
        "canary": canary,
        "nginx_binary": binary,
        "conf": str(prefix / "nginx.conf"),
        "prefix": str(prefix),
        "error_log": str(prefix / "error.log"),
        "timeout": "10s",
    }


def start_nginx(workdir: Path, stable: str, canary: str, on_start: Callable[[AnyProc], None]) -> NginxFront:
    """nginx proxying to ``checkout_upstream``, whose include file starts at weight 0 as shiprail renders it."""
    binary = require_binary("nginx", "/usr/sbin/nginx")
    for sub in ("conf.d", "tmp", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = nginx_settings(binary, workdir, stable, canary)
    conf, error_log, include_file = Path(settings["conf"]), Path(settings["error_log"]), Path(settings["include_file"])
    conf.write_text(NGINX_CONF.format(d=workdir, port=port, upstream=UPSTREAM), encoding="utf-8")
    # nginx refuses to start with an include of a missing file: write weight 0 exactly as shiprail would.
    include_file.write_text(nginx_router.render(NginxRouterConfig.model_validate(settings), 0), encoding="utf-8")
    proc = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(conf), "-e", str(error_log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    on_start(proc)
    wait_for_port(port, proc, error_log)
    return NginxFront(binary, workdir, conf, error_log, include_file, port, proc)


HAPROXY_CFG = """\
global
    stats socket {socket} mode 600 level admin
    stats timeout 10s
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    server stable {stable} weight {stable_weight}
    server canary {canary} weight {canary_weight}
"""


@dataclass
class HaproxyFront:
    """HAProxy in the foreground with an admin runtime API on a unix socket."""

    config_file: Path
    socket: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes]
    socket_dir: Path | None = None
    """A short directory made for the socket when the work directory's path is too long for one."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def settings(self) -> dict[str, str]:
        """The ``router:`` section of the service file, as written in YAML."""
        return {
            "type": "haproxy",
            "socket": str(self.socket),
            "backend": BACKEND,
            "stable_server": "stable",
            "canary_server": "canary",
            "timeout": "5s",
        }


def start_haproxy(workdir: Path, stable: str, canary: str, on_start: Callable[[AnyProc], None]) -> HaproxyFront:
    """HAProxy with backend ``checkout``: ``stable`` and ``canary`` at shiprail's weights for 0 %."""
    binary = require_binary("haproxy", "/usr/sbin/haproxy")
    workdir.mkdir(parents=True, exist_ok=True)
    socket_path, socket_dir = workdir / "admin.sock", None
    if len(str(socket_path)) > 100:  # a unix socket path is limited to 107 bytes
        socket_dir = Path(tempfile.mkdtemp(prefix="shiprail-e2e-"))
        socket_path = socket_dir / "admin.sock"
    port = free_port()
    # server_weights(0) is (200, 0): what HaproxyRouter itself sets for 0 %, so set_weight(0) is a no-op.
    stable_weight, canary_weight = haproxy_router.server_weights(0)
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(
        HAPROXY_CFG.format(
            socket=socket_path,
            port=port,
            backend=BACKEND,
            stable=stable,
            canary=canary,
            stable_weight=stable_weight,
            canary_weight=canary_weight,
        ),
        encoding="utf-8",
    )
    log = workdir / "haproxy.out"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [binary, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        on_start(proc)
        wait_for_port(port, proc, log)
        wait_for_port(socket_path, proc, log)  # HAProxy renames the unix socket into place after binding
    except BaseException:
        if socket_dir is not None:  # the caller stops the process; the short directory is ours to remove
            shutil.rmtree(socket_dir, ignore_errors=True)
        raise
    return HaproxyFront(cfg, socket_path, log, port, proc, socket_dir)


# --------------------------------------------------------------------------------------- stack


@dataclass
class Stack:
    """Two sample service versions, Prometheus and a front router; see ``start_stack``."""

    router: RouterKind
    workdir: Path
    procs: list[AnyProc] = field(default_factory=list)
    """Every process started, in order; ``stop()`` stops them by PID in reverse."""
    stable: Version | None = None
    canary: Version | None = None
    prometheus: PrometheusProcess | None = None
    front: NginxFront | HaproxyFront | None = None
    ready_after_s: float | None = None
    """Seconds from Prometheus's start until both versions' series were scraped (``wait_ready``)."""
    _prometheus_started: float = field(default=0.0, init=False, repr=False)

    # -- the parts, once started ----------------------------------------------------------------

    def _started(self) -> tuple[Version, Version, PrometheusProcess, NginxFront | HaproxyFront]:
        if self.stable is None or self.canary is None or self.prometheus is None or self.front is None:
            raise RuntimeError("the stack is not started")
        return self.stable, self.canary, self.prometheus, self.front

    @property
    def versions(self) -> dict[str, Version]:
        """``{"2.3.1": stable, "2.4.0": canary}``."""
        stable, canary, _, _ = self._started()
        return {stable.version: stable, canary.version: canary}

    @property
    def url(self) -> str:
        """The router's URL (``http://127.0.0.1:PORT/``): where user traffic goes."""
        return self._started()[3].url

    @property
    def prometheus_url(self) -> str:
        return self._started()[2].url

    def router_settings(self) -> dict[str, str]:
        """The service file's ``router:`` section for this stack, as written in YAML."""
        stable, canary, _, front = self._started()
        if isinstance(front, NginxFront):
            return front.settings(stable.target, canary.target)
        return front.settings()

    def router_config(self) -> NginxRouterConfig | HaproxyRouterConfig:
        """``router_settings()`` parsed by shiprail's model."""
        settings = self.router_settings()
        if settings["type"] == "nginx":
            return NginxRouterConfig.model_validate(settings)
        return HaproxyRouterConfig.model_validate(settings)

    def provider_settings(self) -> dict[str, str]:
        """The service file's ``provider:`` section: this stack's Prometheus."""
        return {"type": "prometheus", "url": self.prometheus_url, "timeout": "5s"}

    def provider_config(self) -> PrometheusProviderConfig:
        return PrometheusProviderConfig.model_validate(self.provider_settings())

    def build_router(self) -> Router:
        """shiprail's router for this stack (the canary release of checkout)."""
        return build_router(self.router_config(), service=SERVICE, version=CANARY, baseline=STABLE)

    # -- lifecycle ------------------------------------------------------------------------------

    def _track(self, proc: AnyProc) -> None:
        self.procs.append(proc)

    def start(self) -> Stack:
        """Start every process; on any failure stop what was started and re-raise."""
        if self.router not in ("nginx", "haproxy"):
            raise ValueError(f"router must be nginx or haproxy, got {self.router!r}")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            # The two versions start in parallel: each is a Python start-up of a few hundred ms.
            with ThreadPoolExecutor(2) as pool:
                stable, canary = pool.map(lambda v: start_version(v, app=APP, on_start=self._track), (STABLE, CANARY))
            self.stable, self.canary = stable, canary
            self._prometheus_started = time.monotonic()
            self.prometheus = start_prometheus(self.workdir / "prometheus", [stable.target, canary.target], self._track)
            if self.router == "nginx":
                self.front = start_nginx(self.workdir / "nginx", stable.target, canary.target, self._track)
            else:
                self.front = start_haproxy(self.workdir / "haproxy", stable.target, canary.target, self._track)
            self._check_initial_state()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_initial_state(self, timeout_s: float = 10) -> None:
        """The router reads back weight 0 and answers through to the stable version."""
        weight = self.build_router().current_weight()
        if weight != 0:
            raise RuntimeError(f"the {self.router} router starts at canary weight {weight:g}, not 0")
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.url}checkout", timeout=2)
                if response.status_code == 200 and response.headers.get("X-Version") == STABLE:
                    return
                last = f"HTTP {response.status_code} from {response.headers.get('X-Version', 'no version')}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        raise RuntimeError(f"the {self.router} router did not answer through to {STABLE}: {last}")

    def wait_ready(self, timeout_s: float = 30) -> float:
        """Wait until Prometheus has scraped both versions (``http_requests_total{version="2.4.0"}``
        returns data); the seconds since Prometheus started, also kept in ``ready_after_s``."""
        stable, canary, prometheus, _ = self._started()
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            try:
                found = [
                    bool(prometheus.query(f'http_requests_total{{version="{v}"}}'))
                    for v in (canary.version, stable.version)
                ]
                if all(found):
                    self.ready_after_s = time.monotonic() - self._prometheus_started
                    return self.ready_after_s
                last = found
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"Prometheus did not scrape both versions within {timeout_s:g}s (last: {last})")

    def stop(self) -> None:
        """Stop every process by its PID, the last started first; safe to call twice."""
        problems: list[str] = []
        while self.procs:
            proc = self.procs.pop()
            try:
                stop(proc)
            except Exception as exc:  # keep stopping the others
                problems.append(f"pid {proc.pid}: {exc}")
        if isinstance(self.front, HaproxyFront) and self.front.socket_dir is not None:
            shutil.rmtree(self.front.socket_dir, ignore_errors=True)
        if problems:
            raise RuntimeError("could not stop every process: " + "; ".join(problems))


def start_stack(workdir: Path, router: RouterKind = "nginx", *, ready: bool = True) -> Stack:
    """A started ``Stack`` in ``workdir``; with ``ready``, after Prometheus's first scrape of both versions.

    The caller must call ``stop()`` (the fixtures do). A failure while starting stops what was started.
    """
    stack = Stack(router, workdir).start()
    if ready:
        try:
            stack.wait_ready()
        except BaseException:
            stack.stop()
            raise
    return stack


# ---------------------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Hit:
    """One response: when its request was sent (``time.monotonic()``), who answered, the status."""

    at: float
    version: str
    status: int
    elapsed_s: float


@dataclass(frozen=True)
class Failure:
    """A request that got no response at all (refused, reset, timed out)."""

    at: float
    error: str


class Load:
    """Steady GET traffic through a URL from a background thread, at ``rate`` requests a second.

    Open loop: requests are started on a fixed schedule by a pool of ``concurrency`` threads, so a
    slow version (injected latency) does not slow the load down; a tick with every thread busy is
    skipped and counted in ``skipped``.

    Every request uses a fresh connection (``Connection: close``, no keep-alive pool), which is
    what makes the measured split faithful. Both routers pick the upstream server per request
    either way, and one worker's smooth weighted round-robin is exact (measured: 1 %, 10 % and 50 %
    came out exactly in 400 requests, for nginx and HAProxy alike). But after ``nginx -s reload``
    a kept-alive connection stays with an old worker, which serves it on the old split: with a
    keep-alive client the canary still answered requests 100-150 ms after ``set_weight(0)``
    returned, and a connection idle across the reload went to the canary too. With fresh
    connections the old split lasts only until the old worker stops accepting (measured 60-95 ms
    after ``NginxRouter.set_weight`` returns; HAProxy's runtime API applies to the next request).
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float = 40.0,
        canary: str = CANARY,
        path: str = "checkout",
        concurrency: int = 16,
        timeout_s: float = 5.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.url = url.rstrip("/") + "/" + path.lstrip("/")
        self.rate = rate
        self.canary = canary
        self.timeout_s = timeout_s
        self.skipped = 0
        self._hits: list[Hit] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="load")
        self._client = httpx.Client(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=0),
            headers={"Connection": "close"},
        )
        self._thread: threading.Thread | None = None

    def start(self) -> Load:
        if self._thread is not None:
            raise RuntimeError("this load was already started")
        self._thread = threading.Thread(target=self._run, name="load-dispatch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending, wait for requests in flight, close the client; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        interval = 1 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            if self._slots.acquire(blocking=False):
                self._pool.submit(self._one)
            else:
                with self._lock:
                    self.skipped += 1
            next_at += interval
            if now - next_at > 1:  # far behind (the process was stalled): do not burst to catch up
                next_at = now

    def _one(self) -> None:
        at = time.monotonic()
        try:
            response = self._client.get(self.url)
            hit = Hit(at, response.headers.get("X-Version", NO_VERSION), response.status_code, time.monotonic() - at)
            with self._lock:
                self._hits.append(hit)
        except httpx.HTTPError as exc:
            with self._lock:
                self._failures.append(Failure(at, f"{type(exc).__name__}: {exc}"))
        finally:
            self._slots.release()

    # -- what was seen ----------------------------------------------------------------------------

    def hits(self) -> list[Hit]:
        """Every response so far, in completion order."""
        with self._lock:
            return list(self._hits)

    def share_since(self, t: float, until: float | None = None) -> dict[str, int]:
        """Responses per version for requests sent at or after ``t`` (and before ``until``)."""
        end = float("inf") if until is None else until
        return dict(Counter(h.version for h in self.hits() if t <= h.at < end))

    def statuses_since(self, t: float) -> dict[int, int]:
        """Responses per HTTP status for requests sent at or after ``t``."""
        return dict(Counter(h.status for h in self.hits() if h.at >= t))

    def last_canary_at(self) -> float | None:
        """When the last request the canary answered was sent (``time.monotonic()``); None if never."""
        times = [h.at for h in self.hits() if h.version == self.canary]
        return max(times) if times else None

    def errors(self) -> list[Failure]:
        """Requests that got no response (connection refused or reset, timeout); 5xx are in ``hits``."""
        with self._lock:
            return list(self._failures)

    def wait_for(self, count: int, since: float, timeout_s: float = 10) -> None:
        """Wait until ``count`` responses to requests sent since ``since`` have arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(self.share_since(since).values()) >= count:
                return
            time.sleep(0.05)
        raise TimeoutError(f"fewer than {count} responses within {timeout_s:g}s (errors: {self.errors()[-3:]})")


# ------------------------------------------------------------------------------------- project

ERROR_RATE_QUERY = (
    'sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[{{window}}]))'
    ' / sum(rate(http_requests_total{version="{{version}}"}[{{window}}]))'
)
REQUEST_COUNT_QUERY = 'sum(increase(http_requests_total{version="{{version}}"}[{{window}}]))'
LATENCY_P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) (rate("
    'http_request_duration_seconds_bucket{version="{{version}}"}[{{window}}])))'
)
LATENCY_COUNT_QUERY = 'sum(increase(http_request_duration_seconds_count{version="{{version}}"}[{{window}}]))'
LATENCY_BUCKETS_QUERY = (
    'sum by (le) (increase(http_request_duration_seconds_bucket{version="{{version}}"}[{{window}}]))'
)

DEFAULT_TRIGGERS: tuple[dict[str, Any], ...] = (
    {"name": "errors", "metric": "error_rate", "above": 0.05, "window": "5s", "min_samples": 5},
    {"name": "slow", "metric": "latency_p99", "above_baseline": 3, "window": "5s", "min_samples": 5},
    {"name": "complaints", "signal": "customer_complaint", "above": 0, "window": "1m"},
)
EVENTS = ("approved", "staging", "started", "step", "paused", "rolled_back", "override", "verifying", "completed")
CHANNEL = "e2e-webhook"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:9/shiprail"
"""Nothing listens on port 9: a notification is refused at once instead of hanging a test."""


def _duration(seconds: float) -> str:
    if seconds < 0 or seconds != int(seconds):
        raise ValueError(f"durations are whole seconds, got {seconds}")
    return format_duration(seconds)


def policy_document(*, webhook_url: str = DEFAULT_WEBHOOK_URL) -> dict[str, Any]:
    """``shiprail.yaml`` for e2e: the ``shiprail init`` policy with second-long bakes and analysis.

    Every risk may bake 1 s at each weight, the analysis interval and the verify window are 1 s.
    The template's channels need an env var (Slack URL, webhook secret) or an SMTP server, so they
    are replaced by one unsigned webhook channel, ``e2e-webhook``.
    """
    template = resources.files("shiprail").joinpath("templates/project/shiprail.yaml").read_text(encoding="utf-8")
    policy: dict[str, Any] = yaml.safe_load(template)
    weights = policy["rollout"]["weights"]
    policy["rollout"]["min_bake"] = {risk: {w: "1s" for w in weights[:-1]} for risk in ("low", "medium", "high")}
    policy["rollout"]["analysis_interval"] = "1s"
    policy["verify"] = {"window": "1s"}
    policy["channels"] = {CHANNEL: {"type": "webhook", "url": webhook_url}}
    policy["people"] = {
        "alice": {"roles": ["releaser"], "email": "alice@example.com"},
        "bob": {"roles": ["approver", "oncall"], "email": "bob@example.com"},
        "carol": {"roles": ["approver"], "email": "carol@example.com"},
        "dana": {"roles": ["executive"], "email": "dana@example.com"},
        "quinn": {"roles": ["qa"], "email": "quinn@example.com"},
    }
    return policy


def service_document(stack: Stack) -> dict[str, Any]:
    """``services/checkout.yaml`` for the stack: its router, its Prometheus, two metrics."""
    return {
        "name": SERVICE,
        "description": f"The checkout sample service: {STABLE} and {CANARY} behind {stack.router} (e2e stack).",
        "router": stack.router_settings(),
        "provider": stack.provider_settings(),
        "metrics": {
            "error_rate": {
                "kind": "error_rate",
                "description": "Share of requests answered with a 5xx.",
                "query": ERROR_RATE_QUERY,
                "count_query": REQUEST_COUNT_QUERY,
            },
            "latency_p99": {
                "kind": "latency",
                "unit": "s",
                "description": "99th percentile request latency.",
                "query": LATENCY_P99_QUERY,
                "count_query": LATENCY_COUNT_QUERY,
                "buckets_query": LATENCY_BUCKETS_QUERY,
            },
        },
    }


def plan_document(
    stack: Stack,
    *,
    triggers: Sequence[Mapping[str, Any]] | None = None,
    bakes: Sequence[float] = (2, 2, 2),
    interval: float = 1,
    verify_window: float = 2,
    on_no_data: Literal["pause", "rollback"] = "pause",
    tags: Sequence[str] = ("checkout",),
    probes: bool = False,
    probe_url: str | None = None,
) -> dict[str, Any]:
    """``releases/checkout-2.4.0.yaml``: steps 1, 10, 50 (baking ``bakes`` seconds) and 100."""
    if len(bakes) != 3:
        raise ValueError(f"bakes are the seconds at weights 1, 10 and 50: three numbers, got {list(bakes)}")
    steps: list[dict[str, Any]] = [{"weight": w, "bake": _duration(b)} for w, b in zip((1, 10, 50), bakes, strict=True)]
    steps.append({"weight": 100})
    return {
        "service": SERVICE,
        "version": CANARY,
        "baseline": STABLE,
        "owner": "alice",
        "scope": {
            "summary": "Saved cards can be used for one-click checkout (e2e).",
            "user_facing": True,
            "changes": ["New endpoint POST /checkout/one-click"],
            "tags": list(tags),
        },
        "rollback_contract": {
            "triggers": [dict(t) for t in (DEFAULT_TRIGGERS if triggers is None else triggers)],
            "on_no_data": on_no_data,
            "revert": {"max_duration": "30s"},
        },
        "communication": [{"audience": "engineering", "notify": [CHANNEL], "on": list(EVENTS)}],
        "rollout": {"steps": steps, "analysis_interval": _duration(interval)},
        "verify": {
            "window": _duration(verify_window),
            "on_call": "bob",
            # Probes gate Verify's completion once issue #6 runs them; until then a plan with probes
            # cannot complete, so they are opt-in here.
            "probes": (
                [{"name": "checkout through the router", "url": probe_url or f"{stack.url}checkout", "interval": "1s"}]
                if probes
                else []
            ),
        },
    }


def _dump(path: Path, header: str, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, allow_unicode=True, width=200)
    path.write_text(f"# {header}\n{text}", encoding="utf-8")


def write_project(
    root: Path,
    stack: Stack,
    *,
    triggers: Sequence[Mapping[str, Any]] | None = None,
    bakes: Sequence[float] = (2, 2, 2),
    interval: float = 1,
    verify_window: float = 2,
    on_no_data: Literal["pause", "rollback"] = "pause",
    tags: Sequence[str] = ("checkout",),
    webhook_url: str = DEFAULT_WEBHOOK_URL,
    probes: bool = False,
    probe_url: str | None = None,
) -> Path:
    """Write a shiprail project for ``stack`` into ``root``; return the release plan's path.

    ``shiprail.yaml`` (``policy_document``), ``services/checkout.yaml`` (``service_document``) and
    ``releases/checkout-2.4.0.yaml`` (``plan_document``). ``triggers`` replaces the default
    contract (``DEFAULT_TRIGGERS``); durations are whole seconds. The default tag makes the
    release medium risk: one approval, no QA checklist or load test.
    """
    _dump(
        root / "shiprail.yaml",
        "shiprail policy for an e2e stack (tests/e2e/stack.py)",
        policy_document(webhook_url=webhook_url),
    )
    _dump(
        root / "services" / f"{SERVICE}.yaml",
        f"The {stack.router} e2e stack's checkout service",
        service_document(stack),
    )
    plan = root / "releases" / f"{SERVICE}-{CANARY}.yaml"
    document = plan_document(
        stack,
        triggers=triggers,
        bakes=bakes,
        interval=interval,
        verify_window=verify_window,
        on_no_data=on_no_data,
        tags=tags,
        probes=probes,
        probe_url=probe_url,
    )
    _dump(plan, "Release plan for the e2e stack", document)
    return plan
