"""``shiprail serve`` as a process: the project's service files as the running server reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import stop

KEY = "sdk-key-shop"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHOP = """\
name: shop
router: {type: flag}
provider: {type: push}
metrics:
  error_rate: {kind: error_rate, counter: sdk_requests_total, errors: sdk_errors_total}
"""


@pytest.fixture
def served(project: Path) -> Iterator[tuple[str, Path]]:
    """A real ``shiprail serve --no-controller`` in ``project`` with the flag service ``shop``: its URL and log."""
    (project / "services" / "shop.yaml").write_text(SHOP)
    log = project / "serve.log"
    env = {**os.environ, "SHIPRAIL_SDK_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    env.pop("SHIPRAIL_DATABASE_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shiprail", "serve", "--port", "0", "--no-controller", "--quiet"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=out,
        )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith("shiprail serve: http://"), log.read_text()
        yield first.split()[2], log
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"name: broken\nrouter: {type: flag\n", "YAML syntax error"),
        (b"\xff\xfe not text", "is not UTF-8 text"),
    ],
)
def test_a_flag_service_file_broken_while_serve_runs_is_a_404_not_a_500(
    served: tuple[str, Path], project: Path, content: bytes, problem: str
) -> None:
    url, log = served
    (project / "services" / "broken.yaml").write_bytes(content)
    r = httpx.get(f"{url}/api/v1/sdk/broken/config", headers=AUTH)
    again = httpx.get(f"{url}/api/v1/sdk/broken/config", headers=AUTH)
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "service 'broken' has no flag router here; give its service file `router: {type: flag}`"},
    )
    # The operator learns why from serve's log, in one line and without a traceback.
    assert "Traceback" not in log.read_text()
    assert again.status_code == 404
    # Once, not at every SDK's retry.
    [line] = [line for line in log.read_text().splitlines() if "services/broken.yaml" in line]
    assert problem in line and line.endswith("; its SDKs get 404 until it is fixed")
    assert httpx.get(f"{url}/api/v1/sdk/shop/config", headers=AUTH).status_code == 200
