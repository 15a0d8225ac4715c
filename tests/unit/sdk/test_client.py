"""The SDK client against a scripted shiprail serve (httpx.MockTransport): protocol, fallbacks, outcomes."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from shiprail.defaults import SDK_RETRY_MAX_SECONDS, SDK_RETRY_SECONDS
from shiprail.errors import ShiprailError
from shiprail.sdk import Client, ShiprailSdkError
from shiprail.sdk import client as client_module
from shiprail.sdk.client import next_retry_delay

URL = "http://shiprail.test:8700"
KEY = "sdk-secret"


def config(revision: int = 3, weight: float = 10, **overrides: Any) -> dict[str, Any]:
    body = {
        "service": "checkout",
        "revision": revision,
        "release": "rel-42",
        "stable": "1.4.0",
        "canary": "1.5.0",
        "weight": weight,
        "salt": "rel-42",
    }
    body.update(overrides)
    return body


Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeServe:
    """A scripted shiprail serve: answers config requests from a queue and records every request."""

    def __init__(self) -> None:
        self.config_answers: list[Answer] = []
        self.post_answers: list[Answer] = []
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            queue = self.config_answers if request.method == "GET" else self.post_answers
            answer = queue.pop(0) if queue else httpx.Response(500, json={"detail": "nothing scripted"})
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def ok(self, body: dict[str, Any]) -> FakeServe:
        self.config_answers.append(httpx.Response(200, json=body, headers={"ETag": f'"{body["revision"]}"'}))
        return self

    def then(self, *answers: Answer) -> FakeServe:
        self.config_answers.extend(answers)
        return self

    def gets(self) -> list[httpx.Request]:
        return [request for request in self.requests if request.method == "GET"]

    def posts(self) -> list[httpx.Request]:
        return [request for request in self.requests if request.method == "POST"]


@pytest.fixture
def serve() -> FakeServe:
    return FakeServe()


@pytest.fixture
def make_client(serve: FakeServe) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("start", False)
        client = Client(URL, "checkout", KEY, transport=httpx.MockTransport(serve), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def posted(request: httpx.Request) -> Any:
    return json.loads(request.content)


# --- evaluation --------------------------------------------------------------------------------------


def test_never_fetched_answers_stable(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    assert not client.ready
    assert client.revision == 0
    assert client.config is None
    assert {client.variant(f"user-{i}") for i in range(1_000)} == {"stable"}
    assert {client.variant() for _ in range(1_000)} == {"stable"}
    assert client.version("user-1") is None
    assert client.evaluate("user-1") == ("stable", None, 0, 0.0, False)
    assert not client.wait_ready(0.01)
    assert serve.requests == []  # evaluating never touches the network


def test_version_maps_the_variant() -> None:
    client = Client.from_config(config(weight=50))
    for key in (f"user-{i}" for i in range(200)):
        assert client.version(key) == {"stable": "1.4.0", "canary": "1.5.0"}[client.variant(key)]
    assert client.evaluate("user-7") == (client.variant("user-7"), client.version("user-7"), 3, 50.0, True)


def test_from_config_is_offline(caplog: pytest.LogCaptureFixture) -> None:
    client = Client.from_config(config())
    assert client.ready and client.revision == 3 and client.config == config()
    assert client.flush() is False
    with pytest.raises(ShiprailSdkError):
        client.poll_once()
    with pytest.raises(ShiprailSdkError):
        client.signal("customer_complaint")
    client.record("canary", True, 0.01)
    client.close()
    # Nothing to post to: its outcomes are kept for pending_metrics(), not reported as lost.
    assert client.dropped == 0 and caplog.records == []
    assert client.pending_metrics()["versions"] == {"1.5.0": {"requests": 1, "errors": 0, "latency": {"0.01": 1}}}


@pytest.mark.parametrize(
    "bad",
    [
        {"weight": 101},
        {"weight": -1},
        {"weight": True},
        {"weight": float("nan")},
        {"weight": "10"},
        {"revision": -1},
        {"revision": "3"},
        {"salt": None},
        {"stable": 1},
        {"service": 5},
    ],
)
def test_from_config_rejects_malformed(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Client.from_config(config(**bad))


def test_config_is_a_copy() -> None:
    client = Client.from_config(config())
    copy = client.config
    assert copy is not None
    copy["weight"] = 100
    assert client.config == config()


# --- polling: ETag, long-poll, changes --------------------------------------------------------------


def test_first_fetch_then_etag_and_long_poll(make_client: Callable[..., Client], serve: FakeServe) -> None:
    changes: list[dict[str, Any]] = []
    client = make_client(on_change=changes.append, poll_wait=25)
    serve.ok(config(revision=3)).then(httpx.Response(304, headers={"ETag": '"3"'})).ok(config(revision=4, weight=50))

    assert client.poll_once() == 200
    assert client.ready and client.wait_ready(0) and client.revision == 3 and client.config == config(revision=3)
    assert changes == [config(revision=3)]

    assert client.poll_once() == 304
    assert client.revision == 3 and changes == [config(revision=3)]

    assert client.poll_once() == 200
    assert client.revision == 4 and client.config == config(revision=4, weight=50)
    assert changes == [config(revision=3), config(revision=4, weight=50)]

    first, second, third = serve.gets()
    assert str(first.url) == f"{URL}/api/v1/sdk/checkout/config?wait=0"
    assert "If-None-Match" not in first.headers
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["X-Shiprail-Client"] == client.client_id
    assert client.client_id.startswith("py-") and len(client.client_id) == 15
    assert str(second.url) == f"{URL}/api/v1/sdk/checkout/config?wait=25"
    assert second.headers["If-None-Match"] == '"3"'
    assert third.headers["If-None-Match"] == '"3"'
    assert third.headers["X-Shiprail-Client"] == client.client_id


def test_revision_zero_is_a_config(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    serve.ok(config(revision=0, weight=0, stable=None, canary=None, release=None)).then(httpx.Response(304))
    assert client.poll_once() == 200
    assert client.ready and client.revision == 0 and client.variant("user-1") == "stable"
    client.poll_once()
    assert serve.gets()[1].headers["If-None-Match"] == '"0"'


def test_same_config_again_does_not_call_on_change(make_client: Callable[..., Client], serve: FakeServe) -> None:
    changes: list[dict[str, Any]] = []
    client = make_client(on_change=changes.append)
    serve.ok(config()).ok(config())
    client.poll_once()
    client.poll_once()
    assert changes == [config()]


def test_on_change_failure_is_logged_not_fatal(
    make_client: Callable[..., Client], serve: FakeServe, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("app bug")

    client = make_client(on_change=broken)
    serve.ok(config())
    with caplog.at_level(logging.ERROR, "shiprail.sdk"):
        assert client.poll_once() == 200
    assert client.revision == 3
    assert "on_change" in caplog.text and "app bug" in caplog.text


# --- fallbacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps(config(revision=9, weight=150)).encode(),
        json.dumps({k: v for k, v in config(revision=9).items() if k != "salt"}).encode(),
        json.dumps(config(revision=9, service="payments")).encode(),
    ],
)
def test_malformed_200_keeps_the_old_config(
    make_client: Callable[..., Client], serve: FakeServe, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    changes: list[dict[str, Any]] = []
    client = make_client(on_change=changes.append)
    serve.ok(config()).then(httpx.Response(200, content=body))
    client.poll_once()
    with caplog.at_level(logging.WARNING, "shiprail.sdk"):
        assert client.poll_once() == 200
    assert client.config == config() and changes == [config()]
    assert "malformed config for checkout" in caplog.text


def test_malformed_first_answer_stays_unready(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    serve.then(httpx.Response(200, content=b"{}"))
    assert client.poll_once() == 200
    assert not client.ready and client.variant("user-1") == "stable"


@pytest.mark.parametrize(
    ("status", "detail"),
    [(401, "No SDK key was sent."), (403, "The SDK key is wrong."), (404, "checkout has no flag router.")],
)
def test_refusals_keep_the_config_and_log_once(
    make_client: Callable[..., Client],
    serve: FakeServe,
    caplog: pytest.LogCaptureFixture,
    status: int,
    detail: str,
) -> None:
    client = make_client()
    refusal = httpx.Response(status, json={"detail": detail})
    serve.ok(config()).then(refusal, refusal, refusal)
    client.poll_once()
    with caplog.at_level(logging.DEBUG, "shiprail.sdk"):
        assert [client.poll_once() for _ in range(3)] == [status, status, status]
    assert client.config == config()
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "checkout" in errors[0].getMessage() and detail.rstrip(".") in errors[0].getMessage()


def test_refusal_before_any_config_stays_stable(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    serve.then(httpx.Response(403, json={"detail": "The SDK key is wrong."}))
    assert client.poll_once() == 403
    assert not client.ready and client.variant("user-1") == "stable"


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(500, text="boom"),
        httpx.Response(503, json={"detail": "Restarting."}),
    ],
)
def test_unreachable_after_a_fetch_keeps_the_last_config(
    make_client: Callable[..., Client], serve: FakeServe, failure: Answer
) -> None:
    client = make_client()
    serve.ok(config(weight=50)).then(failure, failure)
    client.poll_once()
    before = [client.variant(f"user-{i}") for i in range(1_000)]
    assert client.poll_once() == (failure.status_code if isinstance(failure, httpx.Response) else 0)
    client.poll_once()
    assert client.config == config(weight=50)
    assert [client.variant(f"user-{i}") for i in range(1_000)] == before
    assert "canary" in before


def test_recovers_after_failures(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    serve.then(httpx.ConnectError("refused")).ok(config())
    assert client.poll_once() == 0
    assert not client.ready
    assert client.poll_once() == 200
    assert client.ready
    # Not ready after the failure, so the retry is still a first fetch: wait=0, no If-None-Match.
    assert [request.url.params["wait"] for request in serve.gets()] == ["0", "0"]
    assert "If-None-Match" not in serve.gets()[1].headers


def test_retry_waits_are_exponential_capped_and_drawn_from_the_upper_half() -> None:
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert ceilings[0] == SDK_RETRY_SECONDS and ceilings[-1] == SDK_RETRY_MAX_SECONDS
    assert [next_retry_delay(n, lambda: 0.0) for n in range(1, 9)] == [c / 2 for c in ceilings]
    assert [next_retry_delay(n, lambda: 0.5) for n in range(1, 9)] == [c * 0.75 for c in ceilings]
    # However long the outage, the wait stays under the cap (no overflow).
    assert next_retry_delay(10_000, lambda: 0.999) == SDK_RETRY_MAX_SECONDS * (0.5 + 0.999 * 0.5)


def test_background_thread_keeps_the_config_fresh(serve: FakeServe) -> None:
    applied = threading.Event()
    seen: list[int] = []

    def on_change(cfg: dict[str, Any]) -> None:
        seen.append(cfg["revision"])
        if cfg["revision"] == 4:
            applied.set()

    serve.ok(config(revision=3)).ok(config(revision=4)).then(*[httpx.Response(304)] * 50)
    with Client(URL, "checkout", KEY, transport=httpx.MockTransport(serve), on_change=on_change) as client:
        assert client.wait_ready(2)
        assert applied.wait(2)
        assert client.revision == 4 and seen == [3, 4]
        started = time.monotonic()
    assert time.monotonic() - started < 0.5
    assert serve.gets()[1].headers["If-None-Match"] == '"3"'


def test_close_interrupts_a_held_long_poll() -> None:
    # A real socket: a server that accepts the long-poll and never answers, as serve does for up to
    # poll_wait seconds. close() must not wait for it.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    connected = threading.Event()

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        held.append(conn)
        conn.recv(65536)
        connected.set()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        client = Client(f"http://127.0.0.1:{port}", "checkout", KEY, poll_wait=25)
        assert connected.wait(5)
        poll_thread = client._threads[0]
        started = time.monotonic()
        client.close()
        elapsed = time.monotonic() - started
        assert elapsed < 0.9
        assert not poll_thread.is_alive()
        assert client.variant("user-1") == "stable"
    finally:
        listener.close()
        for conn in held:
            conn.close()
        acceptor.join(1)


# --- outcomes ----------------------------------------------------------------------------------------


def test_record_batches_exact_payload(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    serve.ok(config())
    client.poll_once()
    serve.post_answers.append(httpx.Response(202, json={"stored": 9}))
    client.record("stable", True, 0.003)
    client.record("stable", True, 0.005)  # on a bound: that bucket
    client.record("stable", False, 0.0051)
    client.record("canary", False, 0.2)
    client.record("canary", True, 0.2)
    client.record("canary", True, 1.0)
    client.record("2.0.0", True, 12)  # an explicit version; beyond 10 s: +Inf
    assert client.flush() is True
    (request,) = serve.posts()
    assert str(request.url) == f"{URL}/api/v1/sdk/checkout/metrics"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert posted(request) == {
        "client": client.client_id,
        "versions": {
            "1.4.0": {"requests": 3, "errors": 1, "latency": {"0.005": 2, "0.01": 1}},
            "1.5.0": {"requests": 3, "errors": 1, "latency": {"0.25": 2, "1": 1}},
            "2.0.0": {"requests": 1, "errors": 0, "latency": {"+Inf": 1}},
        },
    }
    assert client.pending_metrics() == {"client": client.client_id, "versions": {}}
    assert client.flush() is True  # nothing pending: nothing posted
    assert len(serve.posts()) == 1


def test_record_without_config_is_dropped(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    client.record("canary", True, 0.01)
    client.record("stable", False, 0.01)
    assert client.dropped == 2
    assert client.flush() is True
    assert serve.posts() == []


def test_a_version_serve_would_refuse_and_a_latency_no_bucket_holds_are_dropped_alone(
    make_client: Callable[..., Client], serve: FakeServe
) -> None:
    """serve refuses a whole batch naming a version it cannot store: the others must not go with it."""
    client = make_client()
    serve.ok(config())
    client.poll_once()
    client.record("canary", True, 0.01)
    for bad_version in ("", " 1.5.0", "x" * 121, "1.5\x00", json.loads('"\\ud800"')):
        client.record(bad_version, True, 0.01)
    for bad_latency in (float("nan"), -5.0, float("inf")):
        client.record("stable", True, bad_latency)
    assert client.dropped == 8
    serve.post_answers.append(httpx.Response(202))
    assert client.flush() is True
    (post,) = serve.posts()
    assert posted(post)["versions"] == {"1.5.0": {"requests": 1, "errors": 0, "latency": {"0.01": 1}}}


def test_a_failed_batch_is_resent_as_it_was_with_its_key_before_newer_outcomes(
    make_client: Callable[..., Client], serve: FakeServe
) -> None:
    client = make_client()
    serve.ok(config())
    client.poll_once()
    serve.post_answers.extend(
        [httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(202), httpx.Response(202)]
    )
    client.record("stable", True, 0.01)
    assert client.flush() is False
    client.record("stable", False, 0.01)
    assert client.flush() is False  # the first batch again, still failing; the newer outcome waits
    client.record("canary", True, 3)
    assert client.flush() is True  # the first batch, then the newer outcomes in a batch of their own
    first, again, stored, newer = serve.posts()
    assert first.content == again.content == stored.content
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"] == stored.headers["Idempotency-Key"]
    assert newer.headers["Idempotency-Key"] != first.headers["Idempotency-Key"]
    assert posted(first)["versions"] == {"1.4.0": {"requests": 1, "errors": 0, "latency": {"0.01": 1}}}
    assert posted(newer)["versions"] == {
        "1.4.0": {"requests": 1, "errors": 1, "latency": {"0.01": 1}},
        "1.5.0": {"requests": 1, "errors": 0, "latency": {"5": 1}},
    }
    assert client.dropped == 0


def test_a_batch_whose_answer_was_lost_is_not_counted_twice(
    make_client: Callable[..., Client], serve: FakeServe
) -> None:
    """serve stored the batch but the SDK timed out before the answer: the retry carries the same key."""
    client = make_client()
    serve.ok(config())
    client.poll_once()
    stored: dict[str, int] = {}

    def store_then_time_out(request: httpx.Request) -> httpx.Response:
        stored.setdefault(request.headers["Idempotency-Key"], posted(request)["versions"]["1.4.0"]["requests"])
        raise httpx.ReadTimeout("timed out", request=request)

    def store(request: httpx.Request) -> httpx.Response:
        stored.setdefault(request.headers["Idempotency-Key"], posted(request)["versions"]["1.4.0"]["requests"])
        return httpx.Response(202, json={"stored": 1})

    serve.post_answers.extend([store_then_time_out, store])
    for _ in range(100):
        client.record("stable", True, 0.01)
    assert client.flush() is False
    assert client.flush() is True
    assert sum(stored.values()) == 100  # one key: serve keeps the batch once


def test_carried_backlog_is_bounded(
    make_client: Callable[..., Client], serve: FakeServe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_CARRIED_OUTCOMES", 5)
    client = make_client()
    serve.ok(config())
    client.poll_once()
    serve.post_answers.extend([httpx.Response(500), httpx.Response(500)])
    for _ in range(4):
        client.record("stable", True, 0.01)
    assert client.flush() is False  # 4 kept
    for _ in range(2):
        client.record("stable", True, 0.01)
    assert client.flush() is False  # the 4 fail again; with the 2 newer ones > 5: the 4 are dropped
    assert client.dropped == 4
    assert client.pending_metrics()["versions"]["1.4.0"]["requests"] == 2


def test_distinct_versions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_PENDING_VERSIONS", 3)
    client = Client.from_config(config())
    for i in range(5):
        client.record(f"v{i}", True, 0.01)
    assert sorted(client.pending_metrics()["versions"]) == ["v0", "v1", "v2"]
    assert client.dropped == 2


def test_record_is_thread_safe() -> None:
    client = Client.from_config(config())

    def work() -> None:
        for i in range(5_000):
            client.record("canary" if i % 2 else "stable", i % 10 != 0, 0.02)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = client.pending_metrics()["versions"]
    assert versions["1.4.0"] == {"requests": 10_000, "errors": 2_000, "latency": {"0.025": 10_000}}
    assert versions["1.5.0"] == {"requests": 10_000, "errors": 0, "latency": {"0.025": 10_000}}


def test_close_flushes_once(serve: FakeServe) -> None:
    client = Client(URL, "checkout", KEY, transport=httpx.MockTransport(serve), start=False)
    serve.ok(config())
    client.poll_once()
    serve.post_answers.append(httpx.Response(202, json={"stored": 2}))
    client.record("canary", True, 0.04)
    with client:
        pass
    client.close()  # idempotent: no second post
    (request,) = serve.posts()
    assert posted(request)["versions"] == {"1.5.0": {"requests": 1, "errors": 0, "latency": {"0.05": 1}}}


# --- signals -----------------------------------------------------------------------------------------


def test_signal_posts_and_returns_the_answer(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    stored = {"id": 12, "name": "customer_complaint", "count": 2.0}
    serve.post_answers.append(httpx.Response(201, json=stored))
    assert client.signal("customer_complaint", count=2, version="1.5.0", note="slow checkout") == stored
    (request,) = serve.posts()
    assert str(request.url) == f"{URL}/api/v1/sdk/checkout/signals"
    assert posted(request) == {"name": "customer_complaint", "count": 2, "version": "1.5.0", "note": "slow checkout"}


def test_signal_refused_raises(make_client: Callable[..., Client], serve: FakeServe) -> None:
    client = make_client()
    serve.post_answers.extend([httpx.Response(403, json={"detail": "The SDK key is wrong."}), httpx.ConnectError("x")])
    refused = r"refused the signal 'pager' for checkout \(403\): The SDK key is wrong"
    with pytest.raises(ShiprailSdkError, match=refused):
        client.signal("pager")
    with pytest.raises(ShiprailError, match="cannot reach shiprail"):
        client.signal("pager")


# --- packaging ---------------------------------------------------------------------------------------


def test_sdk_imports_nothing_heavy() -> None:
    code = (
        "import sys, shiprail.sdk\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(tops & {'sqlalchemy', 'pydantic', 'fastapi', 'openfeature'})\n"
        "mine = sorted(m for m in sys.modules if m.startswith('shiprail'))\n"
        "print(heavy, mine)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == (
        "[] ['shiprail', 'shiprail.defaults', 'shiprail.errors', 'shiprail.sdk', 'shiprail.sdk.client', "
        "'shiprail.sdk.hashing']"
    )


# --- cut off from serve: max_stale ---------------------------------------------------------------------


def canary_share(client: Client) -> float:
    return sum(client.variant(f"user-{i}") == "canary" for i in range(2000)) / 2000


def test_cut_off_past_max_stale_serves_stable_until_serve_answers_again(
    make_client: Callable[..., Client], serve: FakeServe, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(client_module, "_monotonic", lambda: now[0])
    down = httpx.ConnectError("connection refused")
    serve.ok(config(weight=50)).then(down, down, httpx.Response(304), down).ok(config(4, weight=0))
    client = make_client(poll_wait=25, timeout=5, max_stale=60)
    assert client.poll_once() == 200 and 0.45 < canary_share(client) < 0.55
    now[0] += 50
    assert client.poll_once() == 0 and 0.45 < canary_share(client) < 0.55  # 50 s of silence: still its config
    now[0] += 20
    assert client.poll_once() == 0  # 70 s: a rollback may have been published meanwhile
    assert canary_share(client) == 0 and client.version("user-1") == "1.4.0"
    assert client.revision == 3  # it still asks serve for news of revision 3
    now[0] += 5
    assert client.poll_once() == 304 and 0.45 < canary_share(client) < 0.55  # serve: revision 3 still holds
    now[0] += 100
    assert client.poll_once() == 0 and canary_share(client) == 0
    assert client.poll_once() == 200 and (client.revision, canary_share(client)) == (4, 0)  # the rollback


def test_max_stale_shorter_than_a_long_poll_is_refused() -> None:
    with pytest.raises(ValueError, match=r"max_stale must be longer than poll_wait \+ timeout \(30 s\), not 20"):
        Client(URL, "checkout", KEY, start=False, poll_wait=25, timeout=5, max_stale=20)


@pytest.mark.parametrize("weight", [0, 10, 100])
def test_a_key_that_is_no_text_nor_number_is_refused_at_every_weight(weight: float) -> None:
    # It used to raise AttributeError only once the weight was between 0 and 100: fine in
    # development at weight 0, a crash in production the moment the rollout began.
    client = Client.from_config(config(weight=weight))
    for call in (client.variant, client.version, client.evaluate):
        with pytest.raises(TypeError, match=r"^a shiprail key must be a str or an int \(a user id\), not bytes$"):
            call(b"user-7")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"not bool$"):
            call(True)  # type: ignore[arg-type]


def test_an_int_key_is_its_decimal_text() -> None:
    # Numeric user ids are common; they hash as their digits, as another language's SDK given "42" would.
    client = Client.from_config(config(weight=50))
    for user_id in range(200):
        assert client.variant(user_id) == client.variant(str(user_id))
        assert client.version(user_id) == client.version(str(user_id))
        assert client.evaluate(user_id) == client.evaluate(str(user_id))
    assert {client.variant(user_id) for user_id in range(200)} == {"stable", "canary"}


@pytest.mark.parametrize(
    ("url", "key", "message"),
    [
        (
            "shiprail.test:8700",
            KEY,
            "url must be shiprail serve's base URL, with http:// or https:// and a host "
            "(http://shiprail.internal:8700), not 'shiprail.test:8700'",
        ),
        ("ftp://shiprail.test", KEY, "url must be shiprail serve's base URL"),
        ("http://", KEY, "url must be shiprail serve's base URL"),
        ("", KEY, "url must be shiprail serve's base URL"),
        (
            URL,
            KEY + "\n",
            "sdk_key has spaces around it (a key read from a file often ends in a line break): strip it; "
            "no HTTP header can carry it as it is",
        ),
        (
            URL,
            "clé",
            "sdk_key holds a character other than printable ASCII: no HTTP header can carry it; "
            "pass the key shiprail serve holds",
        ),
        (
            URL,
            "",
            "sdk_key is empty: pass the service's SDK key, the value where shiprail serve runs of the variable "
            "its router.sdk_key_env names (SHIPRAIL_SDK_KEY by default)",
        ),
    ],
)
def test_a_url_or_sdk_key_that_can_never_work_is_refused_at_construction(url: str, key: str, message: str) -> None:
    # They used to be retried for ever (a warning, everyone on stable), or to raise UnicodeEncodeError
    # from inside httpx.
    with pytest.raises(ValueError) as raised:
        Client(url, "checkout", key, start=False, transport=httpx.MockTransport(FakeServe()))
    assert str(raised.value).startswith(message)


def test_an_https_url_and_a_url_with_a_path_prefix_are_taken() -> None:
    for url in ("https://shiprail.test", "HTTP://shiprail.test:8700/flags/", "http://[::1]:8700"):
        Client(url, "checkout", KEY, start=False).close()


def test_clients_and_forked_workers_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each client built two TLS contexts (loading the CA bundle: 90-260 ms measured on a busy
    # machine), and a forked worker built its two on its first variant(), on the request's thread.
    import ssl

    Client("http://127.0.0.1:1", "checkout", KEY, start=False).close()  # the process's first client
    built: list[object] = []
    create = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return create(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    client = Client("https://shiprail.test", "checkout", KEY, start=False)
    client._after_fork()  # what os.fork() runs in the child
    assert client.variant("user-1") == "stable"  # the child's first use builds its pools
    assert client._http is not None and client._poll_http is not None
    client.close()
    assert built == []


@pytest.mark.parametrize("count", [float("nan"), float("inf")])
def test_a_signal_no_json_can_carry_raises_the_sdk_error(
    make_client: Callable[..., Client], serve: FakeServe, count: float
) -> None:
    # It raised httpx's bare ValueError ("Out of range float values are not JSON compliant"), not the
    # ShiprailSdkError signal() is documented to raise, and an app catching that one crashed.
    client = make_client()
    with pytest.raises(ShiprailSdkError) as raised:
        client.signal("customer_complaint", count=count)
    assert str(raised.value) == (
        f"cannot send the signal 'customer_complaint' for checkout: count {count!r} is not a finite number above 0"
    )
    assert serve.requests == []


def test_outcomes_close_counts_as_dropped_are_not_counted_again_by_a_post_that_ends_later(serve: FakeServe) -> None:
    # close() gave up on a flush still under way (serve slow to take a carried batch), counted the
    # pending outcomes in `dropped` but left them pending: when that post came back, the flush went
    # on to send them through the closed client, failed, and counted them dropped a second time.
    posting, answer = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        posting.set()
        answer.wait(5)
        return httpx.Response(202, json={"stored": 1})

    serve.post_answers.extend([httpx.Response(503, json={"detail": "store away"}), slow])
    client = Client(URL, "checkout", KEY, transport=httpx.MockTransport(serve), start=False)
    client.record("1.4.0", True, 0.01)
    assert client.flush() is False  # carried, to be sent again under its key
    flusher = threading.Thread(target=client.flush)
    flusher.start()
    assert posting.wait(5)
    client.record("1.5.0", False, 0.2)
    client.record("1.5.0", True, 0.01)
    client.close()
    assert client.dropped == 2
    answer.set()
    flusher.join(5)
    assert not flusher.is_alive()
    assert client.dropped == 2
    assert client.pending_metrics()["versions"] == {}
    assert len(serve.posts()) == 2
