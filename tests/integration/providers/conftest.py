"""Real processes for the provider tests: sample service versions and a Prometheus server.

Every process runs on 127.0.0.1 from a temporary directory and is stopped by its PID in a
finalizer. The Prometheus tests are skipped (with the reason) only when the binary is missing
and ``CI`` is unset; on CI a missing Prometheus fails them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, require_binary, stop
from tests.support.service_process import Version
from tests.support.service_process import start_version as start_sample_version


def require_prometheus() -> str:
    """The prometheus binary; skip when missing, except on CI where it must be there."""
    return require_binary("prometheus")


def start_version(version: str, request: pytest.FixtureRequest) -> Version:
    """A sample service version in its own process, stopped by PID when ``request`` finishes."""
    return start_sample_version(version, on_start=lambda proc: request.addfinalizer(lambda: stop(proc)))


@pytest.fixture(scope="module")
def versions(request: pytest.FixtureRequest) -> dict[str, Version]:
    """Stable 2.3.1 and canary 2.4.0, each its own process."""
    return {v: start_version(v, request) for v in ("2.3.1", "2.4.0")}


@dataclass
class PrometheusServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def start_prometheus(
    tmp: Path,
    targets: list[str],
    request: pytest.FixtureRequest,
    *,
    extra_config: str = "",
    web_config: str = "",
    ready_headers: dict[str, str] | None = None,
) -> PrometheusServer:
    """A real Prometheus scraping ``targets`` every second; returns once it is ready.

    ``extra_config``: top-level sections added to its configuration (e.g. ``remote_read:``).
    ``web_config``: its ``--web.config.file`` (e.g. ``basic_auth_users:``), and ``ready_headers`` what
    its readiness check then sends.
    """
    binary = require_prometheus()
    port = free_port()
    config = tmp / "prometheus.yml"
    target_list = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"{extra_config}"
        "scrape_configs:\n  - job_name: sample\n"
        f"    static_configs:\n      - targets: [{target_list}]\n",
        encoding="utf-8",
    )
    log = tmp / "prometheus.log"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    if web_config:
        (tmp / "web.yml").write_text(web_config, encoding="utf-8")
        args.append(f"--web.config.file={tmp / 'web.yml'}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    request.addfinalizer(lambda: stop(proc))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1, headers=ready_headers).status_code == 200:
                return PrometheusServer(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"prometheus was not ready within 30 s: {log.read_text(errors='replace')[-2000:]}")


def wait_for_series(server: PrometheusServer, promql: str, count: int, timeout_s: float = 30) -> None:
    """Poll until ``promql`` returns ``count`` series (Prometheus's first scrapes take a moment)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = httpx.get(f"{server.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        if len(last.get("data", {}).get("result", [])) >= count:
            return
        time.sleep(0.25)
    pytest.fail(f"{promql} did not return {count} series within {timeout_s:g} s (last answer {last})")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("providers")
    yield path
