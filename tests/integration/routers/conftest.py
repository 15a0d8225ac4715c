"""Real nginx and HAProxy instances on 127.0.0.1, each in a temporary directory, in front of two
tiny HTTP servers that answer ``stable`` and ``canary``. Every process is stopped by its PID."""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.processes import NGINX_CONF, free_port, require_binary, stop, wait_for_port


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.answer.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Backends:
    stable: str
    canary: str


@pytest.fixture
def backends() -> Iterator[Backends]:
    """Two HTTP servers in threads: one answers ``stable``, the other ``canary``."""
    servers = []
    for answer in ("stable", "canary"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.answer = answer  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
    try:
        yield Backends(*(f"127.0.0.1:{s.server_address[1]}" for s in servers))
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def measure(url: str, requests: int, headers: Callable[[int], dict[str, str]] | None = None) -> Counter[str]:
    """How many of ``requests`` fresh GETs each backend answered."""
    return Counter(answers(url, requests, headers))


def answers(url: str, requests: int, headers: Callable[[int], dict[str, str]] | None = None) -> list[str]:
    """The body of each of ``requests`` GETs, in request order.

    Sent with the standard library's client on one kept-alive connection (opened again when the
    router closes it): a few times less CPU a request than httpx, for tests that send thousands.
    """
    parts = urlsplit(url)
    out = []
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        for i in range(requests):
            conn.request("GET", parts.path or "/", headers=headers(i) if headers else {})
            response = conn.getresponse()
            body = response.read()
            if not 200 <= response.status < 300:
                raise RuntimeError(f"GET {url} answered {response.status} {response.reason}: {body[:200]!r}")
            out.append(body.decode())
    finally:
        conn.close()
    return out


@dataclass
class Nginx:
    binary: str
    prefix: Path
    conf: Path
    error_log: Path
    pid_file: Path
    include_file: Path
    port: int
    proc: subprocess.Popen[bytes]
    reloads_seen: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def workers(self) -> set[int]:
        """PIDs of the master's worker processes (its children), from /proc."""
        children: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                children.add(int(entry.name))
        return {pid for pid in children if _cmdline(pid).startswith("nginx: worker")}

    def wait_for_new_workers(self, old: set[int], timeout: float = 10) -> set[int]:
        """After a reload: wait until no worker from ``old`` is left and new ones serve."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.workers()
            if now and not (now & old) and not (_live(old)):
                return now
            time.sleep(0.02)
        raise AssertionError(f"nginx workers did not change after a reload: {old} → {self.workers()}")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _live(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _cmdline(pid)}


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Callable[[str, str], Nginx]]:
    """Start nginx (foreground, its own prefix, pid file and error log, a free port) whose
    configuration includes ``conf.d/*.conf`` and proxies to ``target``, after ``initial`` (the
    include file's first contents) is written. Stopped by PID at the end."""
    binary = require_binary("nginx", "/usr/sbin/nginx")
    started: list[Nginx] = []

    def start(target: str, initial: str) -> Nginx:
        d = tmp_path / f"nginx{len(started)}"
        for sub in ("conf.d", "tmp", "logs"):
            (d / sub).mkdir(parents=True)
        include_file = d / "conf.d" / "checkout.conf"
        include_file.write_text(initial)
        port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=d, port=port, upstream=target))
        error_log = d / "error.log"
        proc = subprocess.Popen(
            [binary, "-p", str(d), "-c", str(conf), "-e", str(error_log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        instance = Nginx(binary, d, conf, error_log, d / "nginx.pid", include_file, port, proc)
        started.append(instance)
        wait_for_port(port, proc, error_log)
        deadline = time.monotonic() + 10
        while not instance.workers() and time.monotonic() < deadline:
            time.sleep(0.02)
        return instance

    yield start
    for instance in started:
        stop(instance.proc)


HAPROXY_CFG = """\
global
    stats socket {d}/admin.sock level admin
    stats socket ipv4@127.0.0.1:{admin_port} level admin
    stats timeout 10s

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend checkout

backend checkout
    balance roundrobin
    # The header route of docs/routers.md: testers reach the canary while its weight is above 0.
    use-server canary if {{ req.hdr(x-canary) -m str always }} {{ srv_uweight(checkout/canary) gt 0 }}
    server stable {stable} weight 100
    server canary {canary} weight 0

backend static
    balance static-rr
    server stable {stable}
    server canary {canary}
"""


@dataclass
class Haproxy:
    socket: Path
    admin_address: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
def haproxy(tmp_path: Path, backends: Backends) -> Iterator[Haproxy]:
    """HAProxy in the foreground with an admin socket (unix and TCP) and a `checkout` backend of
    two servers, `stable` (weight 100) and `canary` (weight 0). Stopped by PID at the end."""
    binary = require_binary("haproxy", "/usr/sbin/haproxy")
    port, admin_port = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        HAPROXY_CFG.format(d=tmp_path, port=port, admin_port=admin_port, stable=backends.stable, canary=backends.canary)
    )
    log = tmp_path / "haproxy.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_for_port(port, proc, log)
        wait_for_port(admin_port, proc, log)
        # HAProxy binds the unix socket under a temporary name and renames it: on a loaded machine
        # the TCP listeners can be up a moment before the file is there.
        wait_for_port(tmp_path / "admin.sock", proc, log)
        yield Haproxy(tmp_path / "admin.sock", f"127.0.0.1:{admin_port}", port, proc)
    finally:
        stop(proc)
