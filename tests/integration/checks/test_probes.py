"""Verify's probes against a real HTTP server (the sample service, in a thread)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shiprail.checks.probes import run_probe
from shiprail.schema.plan import Probe
from tests.support.processes import free_port
from tests.support.sample_service import SampleService


@pytest.fixture
def service() -> Iterator[SampleService]:
    with SampleService("2.4.0") as svc:
        yield svc


def probe(**fields: object) -> Probe:
    return Probe.model_validate({"name": "checkout", **fields})


def judge(p: Probe) -> tuple[str, str]:
    with httpx.Client() as client:
        result = run_probe(p, client, timeout_s=2)
    assert result.trigger == "probe checkout"
    return result.verdict, result.reason


def test_a_healthy_flow_passes(service: SampleService) -> None:
    verdict, reason = judge(probe(url=f"{service.url}/checkout", max_latency=1))
    assert verdict == "pass"
    assert reason.startswith("HTTP 200 in ")


def test_the_json_expectation_is_checked(service: SampleService) -> None:
    url = f"{service.url}/admin/inject"
    assert judge(probe(url=url, expect_json={"path": "error_rate", "equals": 0.0}))[0] == "pass"
    assert judge(probe(url=url, expect_json={"path": "error_rate", "equals": 0.5})) == (
        "fail",
        "error_rate is 0.0, expected 0.5",
    )
    assert judge(probe(url=url, expect_json={"path": "data.ok"})) == ("fail", "no 'data.ok' in the response")
    assert judge(probe(url=f"{service.url}/checkout", expect_json={"path": "ok"})) == (
        "fail",
        "the response is not JSON",
    )


def test_a_wrong_status_fails(service: SampleService) -> None:
    service.inject(error_rate=1.0)
    assert judge(probe(url=f"{service.url}/checkout")) == ("fail", "HTTP 500, expected 200")


def test_a_slow_answer_fails(service: SampleService) -> None:
    service.inject(latency_s=0.2)
    verdict, reason = judge(probe(url=f"{service.url}/checkout", max_latency=0.05))
    assert verdict == "fail"
    assert reason.endswith("slower than 0.05s")


def test_nothing_listening_fails() -> None:
    verdict, reason = judge(probe(url=f"http://127.0.0.1:{free_port()}/health"))
    assert verdict == "fail"
    assert "ConnectError" in reason
