"""``shiprail serve``'s SDK API on a real uvicorn server, with the flag router publishing into the store."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from shiprail.clock import WallClock
from shiprail.routers import FlagRouter, FlagRouterConfig
from shiprail.serve import SdkService, create_app
from shiprail.store import flags
from shiprail.store.db import Store
from tests.integration.serve.conftest import acknowledged_by_all
from tests.support.serving import serving
from tests.support.stores import pg_role

KEY = "sdk-key-shop"
AUTH = {"Authorization": f"Bearer {KEY}"}


def not_a_key(service: str) -> str:
    return (
        f"the key sent is not the SDK key of {service!r} here; give the app the value of the variable its "
        "service file's `router.sdk_key_env` names where shiprail serve runs (default SHIPRAIL_SDK_KEY)"
    )


def router(store: Store, *, weight_release: str = "shop-2.0.0", ack_wait_s: float = 2.0) -> FlagRouter:
    return FlagRouter(
        FlagRouterConfig(type="flag"),
        store=store,
        clock=WallClock(),
        service="shop",
        release=weight_release,
        version="2.0.0",
        baseline="1.0.0",
        ack_wait_s=ack_wait_s,
    )


@pytest.fixture
def url(store: Store) -> Iterator[str]:
    services = {
        "shop": SdkService("shop", "SHOP_KEY", KEY),
        "nokey": SdkService("nokey", "NOKEY_KEY", None),
    }
    with serving(create_app(store, WallClock(), services)) as base:
        yield base


def test_the_bearer_scheme_is_read_in_any_case(url: str) -> None:
    # Auth schemes are case-insensitive (RFC 9110): a proxy or client spelling it "bearer" got 401.
    for scheme in ("bearer", "BEARER", "Bearer"):
        got = httpx.get(f"{url}/api/v1/sdk/shop/config", headers={"Authorization": f"{scheme} {KEY}"})
        assert got.status_code == 200, scheme
    empty = httpx.get(f"{url}/api/v1/sdk/shop/config", headers={"Authorization": "Bearer"})
    assert (empty.status_code, empty.json()) == (
        401,
        {"detail": "send the SDK key of shop as `Authorization: Bearer <key>`"},
    )


def test_keys_are_checked_and_unknown_services_refused(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        missing = http.get("/api/v1/sdk/shop/config")
        wrong = http.get("/api/v1/sdk/shop/config", headers={"Authorization": "Bearer nope"})
        unset = http.get("/api/v1/sdk/nokey/config", headers=AUTH)
        unknown = http.get("/api/v1/sdk/other/config", headers=AUTH)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "send the SDK key of shop as `Authorization: Bearer <key>`"}
    assert wrong.status_code == 403
    # One sentence that says what to fix, naming no variable of serve's to a caller that holds no key.
    assert wrong.json() == {"detail": not_a_key("shop")}
    assert unset.status_code == 403
    assert unset.json() == {"detail": "shiprail serve has no SDK key for nokey: set NOKEY_KEY where it runs"}
    assert unknown.status_code == 404
    assert "service 'other' has no flag router here" in unknown.json()["detail"]


def test_a_caller_without_a_key_of_this_serve_cannot_tell_which_services_exist(url: str) -> None:
    # Without a key, an unknown service was a 404 and a known one a 401 (and a wrong key: 404 against
    # 403 naming the key's variable): anyone could list the services serve rolls out by probing names.
    services = ("other", "shop", "nokey")
    routes = [("GET", "/config", None), ("POST", "/metrics", {"client": "c", "versions": {}})]
    routes += [("POST", "/signals", {"name": "alert"}), ("DELETE", "/clients/c", None)]
    with httpx.Client(base_url=url) as http:
        for service in services:
            for method, path, body in routes:
                where = f"/api/v1/sdk/{service}{path}"
                bare = http.request(method, where, json=body)
                assert (bare.status_code, bare.json()) == (
                    401,
                    {"detail": f"send the SDK key of {service} as `Authorization: Bearer <key>`"},
                ), where
                guessed = http.request(method, where, json=body, headers={"Authorization": "Bearer guess"})
                assert (guessed.status_code, guessed.json()) == (
                    403,
                    {"detail": not_a_key(service)},
                ), where
        # A holder of one of serve's keys (an app given the wrong service name) is told what to fix.
        unknown = http.get("/api/v1/sdk/other/config", headers=AUTH)
        unset = http.get("/api/v1/sdk/nokey/config", headers=AUTH)
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"detail": "service 'other' has no flag router here; give its service file `router: {type: flag}`"},
    )
    assert (unset.status_code, unset.json()) == (
        403,
        {"detail": "shiprail serve has no SDK key for nokey: set NOKEY_KEY where it runs"},
    )


def test_a_caller_without_a_key_of_this_serve_cannot_time_which_services_exist(store: Store) -> None:
    # A name serve did not know was looked up in the service files (a glob, a YAML file parsed) before
    # the key was checked, while a flag service it knew was refused at once: timing a 403 for a guessed
    # key (on a loaded machine: 1.3 ms for shop against 3.2 ms for nosuch, median of 300) still listed
    # the services serve rolls out. Such a name is now looked up off the request's path.
    looked_up: list[str] = []

    def slow_lookup(name: str) -> SdkService | None:  # a service file read under load
        looked_up.append(name)
        time.sleep(1.0)
        return SdkService("later", "LATER_KEY", "later-key") if name == "later" else None

    services = {"shop": SdkService("shop", "SHOP_KEY", KEY)}
    guess = {"Authorization": "Bearer guess"}
    with (
        serving(create_app(store, WallClock(), services, lookup=slow_lookup)) as base,
        httpx.Client(base_url=base) as http,
    ):
        timings: dict[str, float] = {}
        for name in ("shop", "nosuch", "later"):
            for method, path in (("GET", "/config"), ("DELETE", "/clients/c")):
                started = time.monotonic()
                refused = http.request(method, f"/api/v1/sdk/{name}{path}", headers=guess)
                timings[f"{method} {name}"] = time.monotonic() - started
                assert (refused.status_code, refused.json()) == (
                    403,
                    {"detail": not_a_key(name)},
                )
        assert all(seconds < 0.5 for seconds in timings.values()), timings
        # A holder of a key is told what to fix, after the lookup, as before.
        assert http.get("/api/v1/sdk/nosuch/config", headers=AUTH).status_code == 404
        # A service whose file appeared after start, with a key of its own, is found for its SDK's next try.
        later = {"Authorization": "Bearer later-key"}
        deadline = time.monotonic() + 10
        while (got := http.get("/api/v1/sdk/later/config", headers=later)).status_code == 403:
            assert time.monotonic() < deadline, got.json()
            time.sleep(0.2)
        assert got.status_code == 200 and got.json()["service"] == "later"
    assert "shop" not in looked_up


def test_config_etag_and_304(store: Store, url: str) -> None:
    with httpx.Client(base_url=url, headers=AUTH) as http:
        first = http.get("/api/v1/sdk/shop/config")
        assert first.status_code == 200
        assert first.headers["etag"] == '"0"'
        assert first.json() == {
            "service": "shop",
            "revision": 0,
            "release": None,
            "stable": None,
            "canary": None,
            "weight": 0.0,
            "salt": "shop",
        }
        router(store, ack_wait_s=0).set_weight(10)
        time.sleep(0.3)  # the hub's watcher looks every 50 ms (and is woken at once in-process)
        second = http.get("/api/v1/sdk/shop/config", headers={"If-None-Match": '"0"'})
        assert second.status_code == 200
        assert second.headers["etag"] == '"1"'
        assert second.json() == {
            "service": "shop",
            "revision": 1,
            "release": "shop-2.0.0",
            "stable": "1.0.0",
            "canary": "2.0.0",
            "weight": 10.0,
            "salt": "shop-2.0.0",
        }
        same = http.get("/api/v1/sdk/shop/config", headers={"If-None-Match": '"1"'})
        assert same.status_code == 304
        assert same.headers["etag"] == '"1"'
        assert same.content == b""


def test_setting_the_same_weight_keeps_the_revision(store: Store, url: str) -> None:
    r = router(store, ack_wait_s=0)
    r.set_weight(10)
    r.set_weight(10)
    assert r.current_weight() == 10
    assert r.confirmation is not None and r.confirmation["revision"] == 1
    r.set_weight(0)
    assert r.current_weight() == 0
    assert r.confirmation["revision"] == 2


def test_a_long_poll_is_answered_as_soon_as_the_weight_changes(store: Store, url: str) -> None:
    r = router(store, ack_wait_s=0)
    r.set_weight(1)
    # Until serve's hub has seen revision 1 (its watcher looks every 0.05 s), a long-poll naming it
    # is caught up and answered 304 at once rather than held: on a loaded machine the poll below
    # came first and the test read that 304 as a change never waited for.
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/api/v1/sdk/shop/config", headers=AUTH).headers["etag"] != '"1"':
        assert time.monotonic() < deadline, "serve never saw revision 1"
        time.sleep(0.02)
    answer: dict[str, object] = {}
    asking = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
            asking.set()
            resp = http.get("/api/v1/sdk/shop/config", params={"wait": 20}, headers={"If-None-Match": '"1"'})
            answer["at"] = time.monotonic()
            answer["status"] = resp.status_code
            answer["weight"] = resp.json()["weight"]

    thread = threading.Thread(target=poll)
    thread.start()
    # Timed from the request, not from starting the thread: a loaded machine started it late and
    # the answer came 0.34 s after the request though held until the change.
    assert asking.wait(5)
    time.sleep(0.5)
    published = time.monotonic()
    r.set_weight(0)
    thread.join(timeout=10)
    assert answer["status"] == 200
    assert answer["weight"] == 0.0
    # Held until the change (not answered at once), answered long before its 20 s wait ran out.
    assert published < float(answer["at"]) < published + 4.5  # type: ignore[arg-type]


def test_a_long_poll_without_change_ends_in_304(url: str) -> None:
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        started = time.monotonic()
        resp = http.get("/api/v1/sdk/shop/config", params={"wait": 0.5}, headers={"If-None-Match": '"0"'})
        took = time.monotonic() - started
    assert resp.status_code == 304
    assert 0.45 < took < 2.0


def test_the_router_waits_for_sdks_in_contact_and_reports_laggards(store: Store, url: str) -> None:
    r = router(store, ack_wait_s=0.5)
    r.set_weight(1)
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        # An SDK that fetched revision 1 and then went quiet (it will not poll again).
        http.get("/api/v1/sdk/shop/config", headers={"If-None-Match": '"1"', "X-Shiprail-Client": "quiet"})
    time.sleep(0.3)
    started = time.monotonic()
    r.set_weight(10)
    took = time.monotonic() - started
    assert r.confirmation is not None
    assert r.confirmation["confirmed"] is False
    assert r.confirmation["lagging"] == ["quiet"]
    assert r.confirmation["sdks"] == 1
    assert r.confirmation["summary"].startswith("revision 2 UNCONFIRMED: 0 of 1 SDKs acknowledged it within 0.5s")
    assert 0.45 < took < 2.0


def test_the_router_confirms_once_a_polling_sdk_acknowledges(store: Store, url: str) -> None:
    r = router(store, ack_wait_s=5)
    r.set_weight(1)
    stop = threading.Event()

    def sdk() -> None:
        # A minimal SDK loop: long-poll with the revision it holds, apply what comes back.
        held = "0"
        with httpx.Client(base_url=url, headers={**AUTH, "X-Shiprail-Client": "live"}, timeout=30) as http:
            while not stop.is_set():
                resp = http.get("/api/v1/sdk/shop/config", params={"wait": 1}, headers={"If-None-Match": f'"{held}"'})
                if resp.status_code == 200:
                    held = str(resp.json()["revision"])

    thread = threading.Thread(target=sdk)
    thread.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        r.set_weight(0)
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(timeout=5)
    assert r.confirmation == acknowledged_by_all(2, 1)
    assert took < 1.0


def test_signals_are_stored_like_shiprail_signal(url: str) -> None:
    with httpx.Client(base_url=url, headers=AUTH) as http:
        ok = http.post(
            "/api/v1/sdk/shop/signals", json={"name": "customer_complaint", "note": "checkout hangs", "as": "desk"}
        )
        bad = http.post("/api/v1/sdk/shop/signals", json={"name": "customer complaint"})
        extra = http.post("/api/v1/sdk/shop/signals", json={"name": "x", "colour": "red"})
    assert ok.status_code == 201
    body = ok.json()
    assert (body["service"], body["name"], body["value"], body["actor"], body["note"]) == (
        "shop",
        "customer_complaint",
        1.0,
        "desk",
        "checkout hangs",
    )
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("`name` 'customer complaint' is not a signal name")
    assert extra.status_code == 422
    assert extra.json() == {"detail": "unknown field 'colour'; send name, count, version, note and as"}


@pytest.mark.parametrize("name", ["sdk_requests_total", "sdk_errors_total", "sdk_latency_seconds"])
def test_an_sdk_key_posts_outcomes_only_as_checked_batches_not_as_signals(store: Store, url: str, name: str) -> None:
    # POST /signals took the names /metrics stores outcomes under, past its checks: one holder of the
    # SDK key posting `sdk_errors_total` x1000 for the canary rolled back a healthy release, and
    # `sdk_requests_total` x2**53 hid every error the canary had.
    from shiprail.store.models import SignalEvent

    body = {"name": name, "count": 1000, "version": "2.0.0"}
    got = httpx.post(f"{url}/api/v1/sdk/shop/signals", json=body, headers=AUTH)
    assert (got.status_code, got.json()) == (
        403,
        {
            "detail": f"`name` {name!r} is one of the SDK outcomes, which an SDK key posts to "
            "/api/v1/sdk/shop/metrics (client.record()) and serve checks before storing: name the signal otherwise"
        },
    )
    with store.transaction() as s:
        assert s.query(SignalEvent).count() == 0


def test_an_sdk_key_cannot_post_a_signal_as_a_person(store: Store) -> None:
    # The audit trail named alice as the sender of a complaint she never sent: any holder of the
    # service's SDK key could claim any name.
    from shiprail.store.models import SignalEvent

    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)}, people=["alice", "bob"])
    with serving(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        person = http.post("/api/v1/sdk/shop/signals", json={"name": "customer_complaint", "as": " Alice"})
        desk = http.post("/api/v1/sdk/shop/signals", json={"name": "customer_complaint", "as": "support-desk"})
    assert (person.status_code, person.json()) == (
        403,
        {
            "detail": "`as` ' Alice' is a person in shiprail.yaml, and an SDK key speaks for its service, not for a "
            "person: name the system that sent it (e.g. support-desk), or let the person run `shiprail signal`"
        },
    )
    assert (desk.status_code, desk.json()["actor"]) == (201, "support-desk")
    with store.transaction() as s:
        assert [row.actor for row in s.query(SignalEvent)] == ["support-desk"]


def test_an_sdk_key_cannot_post_a_signal_as_shiprail_itself(store: Store, url: str) -> None:
    # The audit trail and the retrospective named shiprail's controller as the sender of a
    # complaint any holder of the SDK key had posted with `as: shiprail:controller`.
    from shiprail.store.models import AuditEvent, SignalEvent

    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in "shiprail") + ":controller"  # NFKC: shiprail:
    claims = ("shiprail:controller", " Shiprail:notifier", full_width)
    with httpx.Client(base_url=url, headers=AUTH) as http:
        answers = [
            http.post("/api/v1/sdk/shop/signals", json={"name": "customer_complaint", "as": claimed})
            for claimed in claims
        ]
    assert [(a.status_code, a.json()) for a in answers] == [
        (
            403,
            {
                "detail": f"`as` {claimed!r} names shiprail itself (names starting with 'shiprail:' are its own), and "
                "an SDK key speaks for its service: name the system that sent it (e.g. support-desk)"
            },
        )
        for claimed in claims
    ]
    with store.transaction() as s:
        assert s.query(SignalEvent).count() == 0
        assert s.query(AuditEvent).filter(AuditEvent.kind == "signal.received").count() == 0


def test_sdk_outcomes_are_stored_for_the_push_provider(store: Store, url: str) -> None:
    from datetime import timedelta

    from shiprail.providers.push import PushProvider
    from shiprail.schema.service import Metric
    from shiprail.sdk import Client

    client = Client(url, "shop", KEY, start=False)
    client.record("2.0.0", True, 0.003)
    client.record("2.0.0", False, 0.3)
    client.record("1.0.0", True, 0.02)
    assert client.flush() is True
    client.close()
    with httpx.Client(base_url=url, headers=AUTH) as http:
        bad = http.post("/api/v1/sdk/shop/metrics", json={"client": "c", "versions": {"2.0.0": {"requests": -1}}})
        unknown = http.post("/api/v1/sdk/shop/metrics", json={"client": "c", "versions": {}, "x": 1})
    assert bad.status_code == 422
    assert 'versions["2.0.0"].requests' in bad.json()["detail"]
    assert unknown.status_code == 422

    clock = WallClock()
    provider = PushProvider(store, clock, "shop")
    errors = Metric(kind="error_rate", counter="sdk_requests_total", errors="sdk_errors_total")
    p99 = Metric(kind="latency", histogram="sdk_latency_seconds", quantile=0.99)
    window = int(timedelta(minutes=1).total_seconds())
    assert provider.query("errors", errors, "2.0.0", window).value == 0.5
    assert provider.query("errors", errors, "1.0.0", window).value == 0.0
    canary = provider.query("p99", p99, "2.0.0", window)
    assert canary.count == 2
    assert canary.value is not None and 0.25 < canary.value <= 0.5


def test_bad_parameters_get_one_sentence_and_health_answers(url: str) -> None:
    with httpx.Client(base_url=url, headers=AUTH) as http:
        too_long = http.get("/api/v1/sdk/shop/config", params={"wait": 61})
        not_object = http.post("/api/v1/sdk/shop/metrics", json=[1])
        health = http.get("/healthz")
        started = time.monotonic()
        # Without If-None-Match the SDK holds no config: it is answered at once, never held.
        fresh = http.get("/api/v1/sdk/shop/config", params={"wait": 5})
        took = time.monotonic() - started
    assert too_long.status_code == 422
    assert too_long.json() == {"detail": "query.wait: Input should be less than or equal to 60"}
    assert not_object.status_code == 422
    assert not_object.json() == {
        "detail": "the body is not a JSON object; send a JSON object with Content-Type: application/json"
    }
    assert health.status_code == 200
    assert health.json() == {"ok": True, "controller": None, "flag_hub": True}
    assert fresh.status_code == 200 and took < 2


def test_if_none_match_that_is_not_a_revision_here_neither_fails_nor_counts_as_an_acknowledgement(
    store: Store, url: str
) -> None:
    r = router(store, ack_wait_s=0.5)
    r.set_weight(1)
    odd = [
        '"18446744073709551616"',  # beyond SQLite's INTEGER: it once stopped the hub's watcher for good
        '"' + "9" * 5000 + '"',  # beyond int()'s 4,300 digits
        '"\xb2"'.encode("latin-1"),  # "²": str.isdigit() is true of it, int() refuses it
        '"1000"',  # never published
    ]
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        # The hub follows the store by polling: on a loaded machine revision 1 may come after
        # set_weight returns (its acknowledgement wait is only 0.5 s here).
        deadline = time.monotonic() + 10
        while http.get("/api/v1/sdk/shop/config").json()["revision"] != 1:
            assert time.monotonic() < deadline, "serve never published revision 1"
            time.sleep(0.05)
        for i, value in enumerate(odd):
            got = http.get("/api/v1/sdk/shop/config", headers={"If-None-Match": value, "X-Shiprail-Client": f"c{i}"})
            assert got.status_code == 200, value
            assert got.json()["revision"] == 1
        time.sleep(0.3)
        assert http.get("/healthz").json() == {"ok": True, "controller": None, "flag_hub": True}
        # The watcher still follows the store: a rollback reaches the SDKs.
        r.set_weight(0)
        time.sleep(0.3)
        assert http.get("/api/v1/sdk/shop/config").json()["revision"] == 2
    # None of the four claimed revision 2 (or held 1): none acknowledged it.
    assert r.confirmation is not None and r.confirmation["acknowledged"] == 0


def test_bodies_that_cannot_be_stored_get_422_and_a_sentence(url: str) -> None:
    signals, metrics = "/api/v1/sdk/shop/signals", "/api/v1/sdk/shop/metrics"
    send_json = "send a JSON object with Content-Type: application/json"
    cases = [
        (signals, {"json": {"name": "a", "count": 10**400}}, "`count` must be at most 9007199254740992 (2**53)"),
        (signals, {"content": rb'{"name": "a", "note": "\ud800"}'}, "`note` is not text (it holds a lone UTF-16"),
        (signals, {"json": {"name": "a", "as": ""}}, "`as` is empty; say who or what sent the signal"),
        (signals, {"json": {"name": "a", "version": " 1.2.0 "}}, "`version` ' 1.2.0 ' has spaces around it"),
        (signals, {"json": {"name": "a", "note": "x" * 4001}}, "`note` is 4001 characters long; at most 4000 fit"),
        (signals, {"json": {}}, "`name` is required: what is counted, e.g. customer_complaint"),
        (signals, {"content": b"hello", "headers": {"Content-Type": "application/json"}}, "the body is not valid JSON"),
        (signals, {"content": b'{"name": "a"}', "headers": {"Content-Type": "text/plain"}}, "the body is not a JSON"),
        (signals, {"content": b'{"name": "\xff"}', "headers": {"Content-Type": "application/json"}}, "the body is"),
        (
            metrics,
            {"json": {"client": "c", "versions": {"1.2.0": {"requests": 1, "latency": {"1e999": 1}}}}},
            'versions["1.2.0"].latency["1e999"]: 1e999 is not a bucket bound; write the last one "+Inf"',
        ),
        (metrics, {"content": rb'{"client": "c\udfff", "versions": {}}'}, "client is not text"),
        (
            metrics,
            {"json": {"client": "c", "versions": {f"1.{i}": {"requests": 1} for i in range(17)}}},
            "versions: a batch holds at most 16 versions, got 17; an SDK reports the versions it served",
        ),
        # A lone surrogate in a key the message names is shown escaped: the answer must stay UTF-8.
        (
            metrics,
            {"content": rb'{"client": "c", "versions": {"2.0\ud800": {"requests": 1}}}'},
            'versions["2.0\\ud800"]: the version is not text (it holds a lone UTF-16 surrogate); send UTF-8',
        ),
        (
            metrics,
            {"content": rb'{"client": "c", "versions": {"2.0": {"requests": 1, "latency": {"\udfff": 1}}}}'},
            'versions["2.0"].latency["\\udfff"]: a bucket bound must be a number or "+Inf"',
        ),
        (
            metrics,
            {"content": rb'{"client": "c", "versions": {"2.0": {"requests": 1, "\ud800": 1}}}'},
            'versions["2.0"]: unknown field "\\ud800"; the fields are requests, errors and latency',
        ),
    ]
    with httpx.Client(base_url=url, headers=AUTH) as http:
        for path, request, start in cases:
            if "content" in request and "headers" not in request:
                request["headers"] = {"Content-Type": "application/json"}
            got = http.post(path, **request)  # type: ignore[arg-type]
            assert got.status_code == 422, (request, got.text)
            assert got.json()["detail"].startswith(start), got.json()
        assert send_json in http.post(signals, content=b"hello").json()["detail"]
        too_long = {"detail": "the body is more than 1048576 bytes; at most 1048576 are read"}
        huge = http.post(signals, content=b" " * ((1 << 20) + 1), headers={"Content-Type": "application/json"})
        assert (huge.status_code, huge.json()) == (413, too_long)

        def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they come
            for _ in range(40):
                yield b" " * 65536

        chunked = http.post(signals, content=chunks(), headers={"Content-Type": "application/json"})
        assert (chunked.status_code, chunked.json()) == (413, too_long)
        # A body within the limit, chunked, is read as usual.
        json_type = {"Content-Type": "application/json"}
        small = http.post(signals, content=iter([b'{"name": "cust', b'omer_complaint"}']), headers=json_type)
        assert small.status_code == 201, small.text
        assert http.head("/healthz").status_code == 200


def test_an_sdk_ahead_of_this_serve_is_held_until_it_catches_up_not_sent_back(store: Store) -> None:
    from datetime import UTC, datetime

    from shiprail.store import flags

    router(store, ack_wait_s=0).set_weight(1)  # revision 1, before serve starts
    # A serve whose watcher would look for other processes' publishes only every minute.
    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)}, flag_watch_s=60)
    with serving(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        assert http.get("/api/v1/sdk/shop/config").json()["revision"] == 1
        # Another process publishes revision 2; this serve would not look for a minute.
        again = {"release": "shop-2.0.0", "stable": "1.0.0", "canary": "2.0.0", "salt": "shop"}
        assert flags.publish(store, service="shop", weight=0.0, at=datetime.now(UTC), **again).revision == 2
        started = time.monotonic()
        # An SDK that got revision 2 from another serve asks this one: it is woken to look, and
        # the SDK keeps revision 2 (never handed revision 1 back), at once, not after its wait.
        got = http.get("/api/v1/sdk/shop/config", params={"wait": 5}, headers={"If-None-Match": '"2"'})
        took = time.monotonic() - started
    assert (got.status_code, got.headers["etag"]) == (304, '"2"')
    assert took < 2


def test_healthz_says_503_once_every_pass_of_the_flag_hub_fails_for_a_while(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shiprail.clock import SimulatedClock
    from shiprail.store import flags

    clock = SimulatedClock()
    app = create_app(store, clock, {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    with serving(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/healthz").json()["flag_hub"] is True

        def broken(session: object) -> dict[str, int]:
            raise RuntimeError("a bug in the hub's pass")

        monkeypatch.setattr(flags, "revisions", broken)
        time.sleep(0.3)  # passes fail; the thread lives on
        assert http.get("/healthz").status_code == 200  # not yet for long
        clock.advance(11)
        unhealthy = http.get("/healthz")
        assert (unhealthy.status_code, unhealthy.json()["flag_hub"]) == (503, False)
        monkeypatch.undo()
        time.sleep(0.3)  # the next pass succeeds
        assert http.get("/healthz").json() == {"ok": True, "controller": None, "flag_hub": True}


def test_a_controller_thread_that_stops_passing_is_unhealthy_and_its_metrics_are_served(store: Store) -> None:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from shiprail.clock import SimulatedClock
    from shiprail.controller.health import ControllerHealth

    clock = SimulatedClock()
    health = ControllerHealth(clock, "serve:1:ab", stale_after_s=15)

    def loop(stop: threading.Event) -> None:
        now = clock.now()
        health.observe(now, now, failed=0, held=0, rows=[])  # one pass, then stuck (but alive) until stopped
        stop.wait()

    app = create_app(store, clock, {"shop": SdkService("shop", "SHOP_KEY", KEY)}, controller=loop, health=health)
    with serving(app) as url, httpx.Client(base_url=url) as http:
        deadline = time.monotonic() + 5
        while health.last_pass is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert http.get("/healthz").json() == {"ok": True, "controller": True, "flag_hub": True}
        scraped = http.get("/metrics")
        assert scraped.headers["content-type"] == CONTENT_TYPE_LATEST
        assert "shiprail_controller_passes_total 1.0" in scraped.text.splitlines()
        clock.advance(16)  # no pass for 16 s: the thread lives, the loop does not
        stuck = http.get("/healthz")
        assert (stuck.status_code, stuck.json()) == (503, {"ok": False, "controller": False, "flag_hub": True})
    with serving(create_app(store, clock, {})) as url:
        none = httpx.get(f"{url}/metrics")
    assert (none.status_code, none.json()) == (
        404,
        {"detail": "this serve runs no controller (--no-controller): scrape `shiprail controller --metrics-port`"},
    )


def test_a_signal_retried_with_its_idempotency_key_is_stored_once(store: Store, url: str) -> None:
    from shiprail.store import audit

    path = "/api/v1/sdk/shop/signals"
    body = {"name": "customer_complaint", "as": "support-desk"}
    with httpx.Client(base_url=url, headers={**AUTH, "Idempotency-Key": "zendesk-4411"}) as http:
        first, again = http.post(path, json=body), http.post(path, json=body)
        other = http.post(path, json={"name": "alert"})
        unkeyed = httpx.post(f"{url}{path}", json=body, headers=AUTH)
    assert (first.status_code, again.status_code, unkeyed.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    assert other.status_code == 422
    assert other.json()["detail"].startswith("the Idempotency-Key header 'zendesk-4411' was used for another signal")
    with store.transaction() as s:
        kinds = [row.kind for row in audit.rows(s)]
    assert kinds.count("signal.received") == 2  # the keyed complaint once, the unkeyed one once


def test_concurrent_retries_with_one_idempotency_key_store_one_signal(store: Store, url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from shiprail.store.models import SignalEvent

    def send(_: int) -> int:
        headers = {**AUTH, "Idempotency-Key": "burst-1"}
        return httpx.post(f"{url}/api/v1/sdk/shop/signals", json={"name": "alert"}, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(send, range(16)))
    assert codes.count(201) == 1 and codes.count(200) == 15
    with store.transaction() as s:
        assert s.query(SignalEvent).count() == 1


def test_a_serve_cut_off_from_the_store_never_hands_an_sdk_an_older_config(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback published through another serve must not be undone by one that cannot see the store."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import OperationalError

    from shiprail.store import flags

    router(store, ack_wait_s=0).set_weight(50)  # revision 1: half the users on the canary
    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    with serving(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        assert http.get("/api/v1/sdk/shop/config").json()["weight"] == 50

        def unreachable(session: object) -> dict[str, int]:
            raise OperationalError("SELECT", {}, Exception("connection refused"))

        monkeypatch.setattr(flags, "revisions", unreachable)
        time.sleep(0.3)  # this serve's passes now fail: it is cut off from the store
        # The rollback, published by a controller and handed out by another serve.
        again = {"release": "shop-2.0.0", "stable": "1.0.0", "canary": "2.0.0", "salt": "shop-2.0.0"}
        assert flags.publish(store, service="shop", weight=0.0, at=datetime.now(UTC), **again).revision == 2
        # An SDK that applied revision 2 elsewhere long-polls this serve.
        got = http.get("/api/v1/sdk/shop/config", params={"wait": 0.5}, headers={"If-None-Match": '"2"'})
    # It keeps the rollback (304 for what it holds), not revision 1's 50 %.
    assert (got.status_code, got.headers["etag"]) == (304, '"2"')


def test_a_metrics_batch_retried_with_its_idempotency_key_is_stored_once(store: Store, url: str) -> None:
    from sqlalchemy import func, select

    from shiprail.store.models import SignalEvent

    batch = {"client": "py-1", "versions": {"2.0.0": {"requests": 100, "errors": 2, "latency": {"0.01": 100}}}}
    with httpx.Client(base_url=url, headers=AUTH) as http:
        sent = [
            http.post("/api/v1/sdk/shop/metrics", json=batch, headers={"Idempotency-Key": "py-1-1"}) for _ in range(3)
        ]
        other = http.post("/api/v1/sdk/shop/metrics", json=batch, headers={"Idempotency-Key": "py-1-2"})
        blank = http.post("/api/v1/sdk/shop/metrics", json=batch, headers={"Idempotency-Key": "x" * 121})
    assert [r.json() for r in sent] == [{"stored": 3}, {"stored": 0}, {"stored": 0}]
    assert other.json() == {"stored": 3}
    assert blank.status_code == 422 and "Idempotency-Key" in blank.json()["detail"], blank.text
    with store.transaction() as s:
        total = s.scalar(select(func.sum(SignalEvent.value)).where(SignalEvent.name == "sdk_requests_total"))
    assert total == 200


def test_a_metrics_batch_under_a_key_already_used_for_something_else_is_refused_not_dropped(
    store: Store, url: str
) -> None:
    # It answered {"stored": 0} as for a retry, and the batch's requests were lost without a word,
    # where a signal under a key used for another one is a 422.
    from sqlalchemy import func, select

    from shiprail.store.models import SignalEvent

    first = {"client": "py-1", "versions": {"2.0.0": {"requests": 100, "errors": 2}}}
    other = {"client": "py-1", "versions": {"2.0.0": {"requests": 7}}}
    with httpx.Client(base_url=url, headers=AUTH) as http:
        stored = http.post("/api/v1/sdk/shop/metrics", json=first, headers={"Idempotency-Key": "k-1"})
        reused = http.post("/api/v1/sdk/shop/metrics", json=other, headers={"Idempotency-Key": "k-1"})
        signal = http.post("/api/v1/sdk/shop/signals", json={"name": "complaint"}, headers={"Idempotency-Key": "k-2"})
        after_signal = http.post("/api/v1/sdk/shop/metrics", json=other, headers={"Idempotency-Key": "k-2"})
        retry = http.post("/api/v1/sdk/shop/metrics", json=first, headers={"Idempotency-Key": "k-1"})
    assert (stored.status_code, stored.json(), signal.status_code) == (202, {"stored": 2}, 201)
    for key, answer in (("k-1", reused), ("k-2", after_signal)):
        assert (answer.status_code, answer.json()) == (
            422,
            {
                "detail": f"the Idempotency-Key header {key!r} was used for another batch or signal; "
                "use a new key for each batch, the same one only to send it again"
            },
        )
    assert (retry.status_code, retry.json()) == (202, {"stored": 0})
    with store.transaction() as s:
        total = s.scalar(select(func.sum(SignalEvent.value)).where(SignalEvent.name == "sdk_requests_total"))
    assert total == 100


def test_the_openapi_description_names_each_operation_once_and_the_errors_as_they_are_sent(url: str) -> None:
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        spec = httpx.get(f"{url}/api/v1/openapi.json").json()
    # FastAPI warned, into serve's log, of an operation id used twice (GET and HEAD of one route).
    assert [str(w.message) for w in warned] == []
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert sorted((path, method) for path, method, _ in operations) == [
        ("/api/v1/sdk/{service}/clients/{client}", "delete"),
        ("/api/v1/sdk/{service}/config", "get"),
        ("/api/v1/sdk/{service}/metrics", "post"),
        ("/api/v1/sdk/{service}/signals", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(set(ids)) == len(ids)
    error = {"$ref": "#/components/schemas/Error"}
    assert spec["components"]["schemas"]["Error"]["properties"] == {"detail": {"type": "string", "title": "Detail"}}
    for path, _, op in operations:
        if path.startswith("/api/v1/sdk/"):
            codes = {"401", "403", "404", "422"} | ({"413"} if "requestBody" in op else set())
            for code in codes:
                assert op["responses"][code]["content"]["application/json"]["schema"] == error, (path, code)
    assert set(spec["paths"]["/api/v1/sdk/{service}/config"]["get"]["responses"]) >= {"200", "304"}
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    # Under /api/v1/ with the rest, where operations.md has the balancer route it.
    assert httpx.get(f"{url}/redoc").status_code == 404
    assert httpx.get(f"{url}/docs/oauth2-redirect").status_code == 404  # no OAuth2 here: bearer keys
    assert httpx.get(f"{url}/api/v1/redoc").status_code == 200
    # And what the description says is what is sent.
    wrong = httpx.post(f"{url}/api/v1/sdk/shop/signals", json={}, headers={"Authorization": "Bearer nope"})
    invalid = httpx.get(f"{url}/api/v1/sdk/shop/config", params={"wait": -1}, headers=AUTH)
    assert (wrong.status_code, set(wrong.json())) == (403, {"detail"})
    assert (invalid.status_code, set(invalid.json())) == (422, {"detail"})
    assert httpx.head(f"{url}/healthz").status_code == 200


def test_client_ids_with_control_characters_are_refused_not_stored(store: Store, url: str) -> None:
    # A NUL in the closing SDK's id was a 500 and a traceback on PostgreSQL (text cannot hold NUL);
    # other control characters were stored as an SDK in contact and named among the laggards.
    with httpx.Client(base_url=url, headers=AUTH) as http:
        nul = http.delete("/api/v1/sdk/shop/clients/a%00b")
        tab = http.delete("/api/v1/sdk/shop/clients/a%09b")
        escape = {"X-Shiprail-Client": "a\x1b[31mb", "If-None-Match": '"0"'}
        polled = http.get("/api/v1/sdk/shop/config", headers=escape)
        fine = http.delete("/api/v1/sdk/shop/clients/py-0a1b")
    sentence = "holds a control character; send the SDK instance's id as printable text"
    assert (nul.status_code, nul.json()) == (422, {"detail": f"path.client {sentence}"})
    assert (tab.status_code, tab.json()) == (422, {"detail": f"path.client {sentence}"})
    assert (polled.status_code, polled.json()) == (422, {"detail": f"header.x-shiprail-client {sentence}"})
    assert fine.status_code == 204
    time.sleep(0.3)  # the hub stores the contacts it heard every 0.05 s
    with store.transaction() as s:
        assert flags.contacts(s, "shop", datetime(2000, 1, 1, tzinfo=UTC)) == []


def test_posts_while_the_store_is_unreachable_get_503_and_a_sentence(
    pg_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # They were a plain-text 500 with a traceback per request in serve's log. The outage is real:
    # serve's database role may no longer log in, and its open connections are ended.
    grants = [
        "GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}",
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    ]
    with pg_role(pg_store, grants) as (role, schema):
        url = sa.make_url(pg_store.url).set(username=role).render_as_string(hide_password=False)
        store = Store(url, engine_options={"connect_args": {"options": f"-csearch_path={schema}"}})
        app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
        try:
            with serving(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
                assert http.post("/api/v1/sdk/shop/signals", json={"name": "complaint"}).status_code == 201
                with pg_store.engine.begin() as conn:
                    conn.execute(sa.text(f'ALTER ROLE "{role}" NOLOGIN'))
                    conn.execute(
                        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                        {"r": role},
                    )
                caplog.clear()
                answers = [
                    http.post("/api/v1/sdk/shop/signals", json={"name": "complaint"}),
                    http.post(
                        "/api/v1/sdk/shop/metrics", json={"client": "py-1", "versions": {"2.0.0": {"requests": 1}}}
                    ),
                    http.delete("/api/v1/sdk/shop/clients/py-1"),
                ]
        finally:
            store.close()
    detail = {"detail": "shiprail serve cannot reach its store right now; try again"}
    assert [(a.status_code, a.json(), a.headers.get("retry-after")) for a in answers] == [(503, detail, "1")] * 3
    assert not [r for r in caplog.records if r.exc_info]


def test_healthz_answers_at_once_while_every_worker_thread_waits_on_the_store(pg_store: Store) -> None:
    # /healthz ran in the thread pool that the posts use: 40 posts waiting on a locked table made a
    # load balancer's health check wait as long, and take every serve on that database out.
    app = create_app(pg_store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    with serving(app) as base, pg_store.engine.connect() as locker:
        locker.execute(sa.text("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE"))
        posts: list[int] = []

        def post() -> None:
            r = httpx.post(f"{base}/api/v1/sdk/shop/signals", json={"name": "complaint"}, headers=AUTH, timeout=60)
            posts.append(r.status_code)

        threads = [threading.Thread(target=post) for _ in range(45)]
        for t in threads:
            t.start()
        time.sleep(1)  # every worker thread now waits for the lock (or for a connection)
        started = time.monotonic()
        health = httpx.get(f"{base}/healthz", timeout=10)
        head = httpx.head(f"{base}/healthz", timeout=10)
        took = time.monotonic() - started
        locker.rollback()
        for t in threads:
            t.join()
    assert (health.status_code, head.status_code) == (200, 200)
    assert took < 1, took
    assert posts == [201] * 45


def test_posts_that_wait_too_long_for_a_store_connection_get_503(pg_store: Store) -> None:
    # The pool's wait for a free connection ran out (sqlalchemy's TimeoutError): a 500 and a traceback.
    with pg_store.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    options = {"connect_args": {"options": f"-csearch_path={schema}"}, "pool_size": 1, "max_overflow": 0}
    store = Store(pg_store.url, engine_options={**options, "pool_timeout": 0.5})
    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    answers: list[httpx.Response] = []
    try:
        with serving(app) as base, pg_store.engine.connect() as locker:
            locker.execute(sa.text("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE"))

            def post() -> None:
                answers.append(httpx.post(f"{base}/api/v1/sdk/shop/signals", json={"name": "c"}, headers=AUTH))

            threads = [threading.Thread(target=post) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(2)  # one post holds the only connection, waiting for the lock; the others give up
            locker.rollback()
            for t in threads:
                t.join()
    finally:
        store.close()
    busy = (503, {"detail": "shiprail serve cannot reach its store right now; try again"})
    assert sorted((a.status_code, a.json()) for a in answers if a.status_code != 201) == [busy, busy]
    assert [a.status_code for a in answers].count(201) == 1


def test_a_request_that_fails_unexpectedly_gets_a_json_500(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug answered plain text ("Internal Server Error"), the one answer without a JSON detail.
    from shiprail.providers import push

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(push, "record_signal", broken)
    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)})
    with serving(app) as base:
        r = httpx.post(f"{base}/api/v1/sdk/shop/signals", json={"name": "complaint"}, headers=AUTH)
    assert (r.status_code, r.headers["content-type"], r.json()) == (
        500,
        "application/json",
        {"detail": "shiprail serve failed on this request (a bug: its log has the traceback); try again later"},
    )


def test_an_sdk_key_cannot_claim_a_person_behind_invisible_or_wide_characters(store: Store) -> None:
    # 'alice' with a zero-width space, a soft hyphen or in full-width letters reads as alice in the
    # audit trail, yet was stored (201): the check compared the text only without case and spaces.
    from shiprail.store.models import SignalEvent

    app = create_app(store, WallClock(), {"shop": SdkService("shop", "SHOP_KEY", KEY)}, people=["alice", "bob"])
    claims = ["alice\u200b", "ali\u00adce", "\u2060Bob", "\uff41lice", "alice\u3164"]
    with serving(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        answers = [http.post("/api/v1/sdk/shop/signals", json={"name": "complaint", "as": a}) for a in claims]
    assert [a.status_code for a in answers] == [403, 403, 403, 403, 403]
    with store.transaction() as s:
        assert s.query(SignalEvent).count() == 0


def test_a_path_serve_does_not_have_is_answered_with_what_an_sdk_should_be_given(url: str) -> None:
    # An SDK given serve's API root (http://host:8700/api/v1) asked /api/v1/api/v1/sdk/shop/config and
    # logged `shiprail refused the config of shop (404): Not Found`, which named nothing to fix.
    got = httpx.get(f"{url}/api/v1/api/v1/sdk/shop/config", headers=AUTH)
    assert (got.status_code, got.json()) == (
        404,
        {
            "detail": "no such path here: /api/v1/api/v1/sdk/shop/config; give an SDK shiprail serve's base URL "
            "(http://HOST:PORT, no /api/v1), to which it adds /api/v1/sdk/<service>/config; the API is described "
            "at /api/v1/docs"
        },
    )
    known = httpx.get(f"{url}/api/v1/sdk/missing/config", headers=AUTH)
    assert known.json()["detail"].startswith("service 'missing' has no flag router here")
