"""Helpers for tests that start real processes on 127.0.0.1 and stop them by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child a test sends SIGINT to: SIGINT's default disposition in it.

    A test runner started in the background by a shell without job control (``cmd &`` in a
    script, some CI agents) has SIGINT ignored, and its test processes and their children inherit
    that; a Python started with SIGINT ignored installs no KeyboardInterrupt handler, so the
    test's Ctrl-C would do nothing. A person's Ctrl-C reaches a process whose SIGINT is not ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def require_binary(name: str, default: str | None = None) -> str:
    """The binary's path; skip when it is missing, except on CI (CI set), where the test fails."""
    found = shutil.which(name) or (default if default and os.access(default, os.X_OK) else None)
    if found is None:
        problem = f"{name} is not installed (scripts/test.sh installs it when run as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI must run the {name} tests")
        pytest.skip(problem)
    return found


def wait_for_port(
    port: int | Path,
    proc: subprocess.Popen[bytes] | subprocess.Popen[str],
    log: Path | None = None,
    timeout: float = 10,
) -> None:
    """Return once something accepts connections on 127.0.0.1:``port`` (or the unix socket at that path).

    Fails early if ``proc`` exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {detail}")
        try:
            if isinstance(port, Path):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
                    unix.settimeout(0.2)
                    unix.connect(str(port))
            else:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
            return
        except OSError:
            time.sleep(0.02)
    where = port if isinstance(port, Path) else f"127.0.0.1:{port}"
    raise RuntimeError(f"nothing listens on {where} after {timeout:g}s")


# A foreground nginx with its own prefix, pid file, logs and temp paths under ``{d}``, listening
# on 127.0.0.1:{port} and proxying to ``{upstream}``, which a file in ``{d}/conf.d/`` defines
# (shiprail's NginxRouter owns that file).
NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/conf.d/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            # A failed upstream is reported (502), never silently retried on the other version.
            proxy_next_upstream off;
        }}
    }}
}}
"""
