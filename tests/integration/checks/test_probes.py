"""Verify's probes against a real HTTP server (the sample service, in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from shiprail.checks.probes import run_probe
from shiprail.schema.plan import Probe
from tests.support.exposition import local_server as served
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


def test_nothing_listening_fails_and_the_reason_keeps_no_credentials() -> None:
    port = free_port()
    verdict, reason = judge(probe(url=f"http://admin:S3cret@127.0.0.1:{port}/health?token=abc123"))
    # The reason goes into the audit trail and the release's notifications: no user, password or query.
    assert (verdict, reason) == ("fail", f"cannot reach GET http://127.0.0.1:{port}/health: connection refused")


class Trickle(BaseHTTPRequestHandler):
    """Headers at once, then one byte of the body every 0.3 s for 3 s: each read is quick."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        try:
            for _ in range(10):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.3)
        except OSError:
            pass  # the probe hung up, as it should

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_that_trickles_in_fails_at_the_timeout() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with httpx.Client() as client:
            result = run_probe(probe(url=f"http://127.0.0.1:{server.server_address[1]}/flow"), client, timeout_s=1)
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert (result.verdict, result.reason) == (
        "fail",
        f"GET http://127.0.0.1:{server.server_address[1]}/flow did not answer within 1s",
    )
    assert took < 2.5  # the whole answer takes 3 s; slack for a loaded machine (1.52 s seen under load 10)


JSON_BODIES = {"/one": b'{"ok": 1}', "/true": b'{"ok": true}', "/zero": b'{"ok": 0}', "/false": b'{"ok": false}'}


class JsonAnswers(BaseHTTPRequestHandler):
    """Answers the JSON document its path names: /one → {"ok": 1}, /true → {"ok": true}, and so on."""

    def do_GET(self) -> None:
        body = JSON_BODIES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_json_boolean_is_not_a_number() -> None:
    with served(JsonAnswers) as base:
        verdicts = {
            (path, json.dumps(equals)): judge(probe(url=f"{base}{path}", expect_json={"path": "ok", "equals": equals}))
            for path in ("/one", "/true", "/zero", "/false")
            for equals in (1, True, 0, False)
        }
    # true is not 1 and false is not 0: each answer matches only the expectation of its own type.
    assert {key for key, (verdict, _) in verdicts.items() if verdict == "pass"} == {
        ("/one", "1"),
        ("/true", "true"),
        ("/zero", "0"),
        ("/false", "false"),
    }
    assert verdicts[("/one", "true")] == ("fail", "ok is 1, expected true")
    assert verdicts[("/false", "0")] == ("fail", "ok is false, expected 0")


class Redirects(BaseHTTPRequestHandler):
    """/old answers 301 to https://login.example/sso?token=s3cret; /new answers 200."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/new" else 301)
        if self.path != "/new":
            self.send_header("Location", "https://login.example/sso?token=s3cret")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_redirect_is_not_followed_and_says_where_it_points() -> None:
    # As the controller's probe client: redirects not followed.
    with served(Redirects) as base, httpx.Client(follow_redirects=False) as client:
        moved = run_probe(probe(url=f"{base}/old"), client, timeout_s=2)
        expected = run_probe(probe(url=f"{base}/old", expect_status=301), client, timeout_s=2)
        fine = run_probe(probe(url=f"{base}/new"), client, timeout_s=2)
    # The query of the location is left out, as of the probe's own URL: it may hold a token.
    assert (moved.verdict, moved.reason) == (
        "fail",
        "HTTP 301, expected 200 (a redirect to https://login.example/sso, which probes do not follow)",
    )
    assert (expected.verdict, fine.verdict) == ("pass", "pass")
