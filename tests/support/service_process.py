"""A sample service version (``tests/support/sample_service.py``) in a process of its own.

``start_version`` starts it on a free port and returns once it serves; the caller stops it by PID
(``tests.support.processes.stop(version.proc)``). ``on_start`` is called with the process right
after it is spawned, before waiting for it, so a caller can register its cleanup even when the
service then fails to come up.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SAMPLE_SERVICE = Path(__file__).resolve().parent / "sample_service.py"


@dataclass
class Version:
    """One running sample service version."""

    version: str
    url: str
    proc: subprocess.Popen[str]
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    """The last lines the process printed after it started (tracebacks, mostly)."""

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``: a Prometheus target or an upstream server address."""
        return self.url.removeprefix("http://")

    def inject(self, *, error_rate: float | None = None, latency_s: float | None = None) -> None:
        """Change the faults at run time (``POST /admin/inject``); ``None`` leaves one as it is."""
        faults = {k: v for k, v in (("error_rate", error_rate), ("latency_s", latency_s)) if v is not None}
        httpx.post(f"{self.url}/admin/inject", json=faults, timeout=5).raise_for_status()


def _drain(proc: subprocess.Popen[str], into: deque[str]) -> None:
    """Keep reading the process's output so a full pipe never blocks it."""
    assert proc.stdout is not None
    for line in proc.stdout:
        into.append(line.rstrip("\n"))


def start_version(
    version: str,
    *,
    app: str = "checkout",
    on_start: Callable[[subprocess.Popen[str]], None] | None = None,
) -> Version:
    """A sample service ``version`` of ``app`` in its own process, on a free port it reports itself."""
    proc = subprocess.Popen(
        [sys.executable, str(SAMPLE_SERVICE), "--version", version, "--app", app],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if on_start is not None:
        on_start(proc)
    assert proc.stdout is not None
    # The service prints its address once it serves, or exits (EOF) with a traceback.
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("listening on "):
            started = Version(version, line.strip().removeprefix("listening on "), proc)
            threading.Thread(target=_drain, args=(proc, started.output), name=f"drain-{version}", daemon=True).start()
            return started
    detail = "\n".join(lines[-20:]) or "no output"
    raise RuntimeError(f"sample service {version} did not start (exit status {proc.poll()}): {detail}")
