"""The notifier on a real store (SQLite and PostgreSQL), delivering to real local receivers.

A Slack-compatible HTTP receiver (URL from an environment variable), a webhook receiver that
checks each HMAC signature, a real SMTP server (aiosmtpd, with and without STARTTLS), a port
nobody listens on. The clock is simulated, so retries hours apart run in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError
from sqlalchemy import select

from shiprail.clock import Clock, SimulatedClock
from shiprail.controller import Controller
from shiprail.domain.states import Action
from shiprail.notifiers import ChannelConfig, EmailChannel, WebhookChannel, outbox
from shiprail.notifiers.messages import Message
from shiprail.notifiers.notifier import Notifier
from shiprail.project import check_plan_file
from shiprail.releases import Releases
from shiprail.routers import RouterError
from shiprail.store import audit
from shiprail.store.models import Cursor, Delivery
from tests.integration.notifiers.conftest import (
    REASON,
    SECRET,
    SECRET_ENV,
    SLACK_ENV,
    FakeRouter,
    HttpReceiver,
    Metrics,
    Smtp,
    channels,
    controller,
    free_port,
    running,
    start_release,
    start_smtp,
)
from tests.support.stores import connection_cutter

# The deliveries a release of the example plan makes on its way to step 1 (two overrides, started).
UP_TO_STARTED = [
    ("override", "engineering", "releases-slack"),
    ("started", "engineering", "releases-slack"),
    ("started", "support", "status-page"),
    ("started", "on-call", "oncall-email"),
    ("override", "engineering", "releases-slack"),
]


def deliveries(svc: Releases) -> list[Delivery]:
    with svc.store.transaction() as s:
        return list(s.execute(select(Delivery).order_by(Delivery.id)).scalars())


def notifications(svc: Releases) -> list[tuple[str, str, dt.datetime, dict[str, Any]]]:
    with svc.store.transaction() as s:
        return [
            (r.kind, r.actor, r.at, json.loads(r.payload)) for r in audit.rows(s) if r.kind.startswith("notification.")
        ]


def chain_ok(svc: Releases) -> bool:
    with svc.store.transaction() as s:
        seq, digest = audit.head(s)
        return audit.verify(audit.rows(s), head_seq=seq, head_hash=digest).ok


def body_of(mail: EmailMessage) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def drain(notifier: Notifier, clock: Clock) -> None:
    """Tick, jumping the clock to each next retry, until nothing is pending."""
    assert isinstance(clock, SimulatedClock)
    wake = notifier.tick()
    while wake is not None:
        clock.sleep_until(wake)
        wake = notifier.tick()


@pytest.fixture
def env(receivers: tuple[HttpReceiver, HttpReceiver]) -> dict[str, str]:
    return {SLACK_ENV: receivers[0].url, SECRET_ENV: SECRET}


def test_a_rolled_back_release_reaches_every_audience(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, hook = receivers
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=hook.url, smtp_port=smtp.port), env=env)
    rid = start_release(svc)
    metrics = Metrics(svc.clock, "2.4.0")
    ctl = controller(svc, lambda r: metrics)
    ctl.tick()
    assert notifier.tick() is None  # everything due was sent
    metrics.bad = True
    ctl.run(until_done=True)
    assert svc.get(rid).status == "rolled_back"
    assert notifier.tick() is None

    sent = [(d.event, d.audience, d.channel, d.status, d.attempts) for d in deliveries(svc)]
    assert sent == [(*d, "sent", 1) for d in UP_TO_STARTED] + [
        # A rollback is news twice: decided (with its reason), then confirmed.
        ("rolled_back", "engineering", "releases-slack", "sent", 1),
        ("rolled_back", "support", "status-page", "sent", 1),
        ("rolled_back", "on-call", "oncall-email", "sent", 1),
        ("rolled_back", "engineering", "releases-slack", "sent", 1),
        ("rolled_back", "support", "status-page", "sent", 1),
        ("rolled_back", "on-call", "oncall-email", "sent", 1),
    ]

    # Slack-compatible: {"text": ..., "blocks": ...} to the URL the environment variable holds.
    assert [r.json()["text"].split("\n")[0] for r in slack.requests] == [
        f"[shiprail] dana overrode the failed gate approvals of stage for checkout 2.4.0: {REASON}",
        "[shiprail] checkout 2.4.0 started its rollout at 1% by dana",
        f"[shiprail] dana overrode the failed gates qa, tests, load_test of start for checkout 2.4.0: {REASON}",
        "[shiprail] checkout 2.4.0 is rolling back: trigger errors fired: 0.5 above the limit 0.01",
        "[shiprail] checkout 2.4.0 rolled back: the router confirmed weight 0",
    ]
    assert all(r.headers["content-type"] == "application/json" and r.json()["blocks"] for r in slack.requests)

    # Generic webhook: the JSON event, signed over timestamp and body; the receiver checked each.
    assert [r.signature_ok for r in hook.requests] == [True, True, True]
    bodies = [r.json() for r in hook.requests]
    assert [(b["event"], b["status"], b["audience"]) for b in bodies] == [
        ("started", "rolling_out", "support"),
        ("rolled_back", "rolling_back", "support"),
        ("rolled_back", "rolled_back", "support"),
    ]
    first = bodies[0]
    assert (first["release_id"], first["service"], first["version"]) == (rid, "checkout", "2.4.0")
    assert first["summary"] == "Saved cards can be used for one-click checkout."
    assert hook.requests[0].headers["x-shiprail-delivery"] == str(first["delivery_id"])
    assert hook.requests[0].headers["x-shiprail-event"] == "started"
    assert hook.requests[0].headers["x-shiprail-signature"].startswith("sha256=")

    # Email over SMTP: one message per event to the on-call address.
    mails = [message_from_bytes(content) for _, _, content in smtp.mailbox.messages]
    assert [m["Subject"] for m in mails] == [
        f"[shiprail] {rid} started",
        f"[shiprail] {rid} rolled_back",
        f"[shiprail] {rid} rolled_back",
    ]
    assert {(frm, tuple(to)) for frm, to, _ in smtp.mailbox.messages} == {
        ("shiprail@example.com", ("oncall@example.com",))
    }
    assert "trigger errors fired: 0.5 above the limit 0.01" in body_of(mails[1])

    # Every attempt is in the audit trail, by the notifier, and the chain still holds.
    records = notifications(svc)
    assert {(kind, actor) for kind, actor, _, _ in records} == {("notification.sent", "shiprail:notifier")}
    assert sorted(p["delivery_id"] for *_, p in records) == [d.id for d in deliveries(svc)]
    assert chain_ok(svc)


def test_a_down_channel_is_retried_with_backoff_then_failed_and_every_attempt_is_audited(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, _ = receivers
    down = f"http://127.0.0.1:{free_port()}/hooks/shiprail"
    notifier = Notifier(
        svc.store,
        svc.clock,
        channels(hook_url=down, smtp_port=smtp.port),
        env=env,
        attempts=4,
        backoff_s=10,
        backoff_max_s=25,
    )
    start_release(svc)
    t0 = svc.clock.now()
    drain(notifier, svc.clock)

    by_channel = {d.channel: d for d in deliveries(svc) if d.event == "started"}
    hook = by_channel["status-page"]
    assert (hook.status, hook.attempts) == ("failed", 4)
    assert hook.last_error.startswith("the webhook at 127.0.0.1 could not be reached")
    # The channel being down cost the others nothing.
    assert [d.status for d in deliveries(svc) if d.channel != "status-page"] == ["sent"] * 4
    assert len(slack.requests) == 3 and len(smtp.mailbox.messages) == 1

    failed = [(at, p) for kind, actor, at, p in notifications(svc) if kind == "notification.failed"]
    assert [p["attempt"] for _, p in failed] == [1, 2, 3, 4]
    # Backoff doubles from 10 s and is capped at 25 s: attempts at 0, 10, 30 and 55 s.
    assert [(at - t0).total_seconds() for at, _ in failed] == [0, 10, 30, 55]
    retries = [(t0 + dt.timedelta(seconds=s)).isoformat() for s in (10, 30, 55)]
    assert [p["retry_at"] for _, p in failed] == [*retries, None]
    assert [p["final"] for _, p in failed] == [False, False, False, True]
    assert all(
        p["channel"] == "status-page" and p["audience"] == "support" and p["event"] == "started" for _, p in failed
    )
    assert all("could not be reached" in p["error"] for _, p in failed)
    assert notifier.tick() is None  # nothing left to try
    assert chain_ok(svc)


def test_a_channel_that_recovers_is_sent_on_a_later_attempt(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    _, hook = receivers
    hook.statuses = [503, 500]
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=hook.url, smtp_port=smtp.port), env=env)
    start_release(svc)
    drain(notifier, svc.clock)
    [d] = [d for d in deliveries(svc) if d.channel == "status-page"]
    assert (d.status, d.attempts, d.last_error) == ("sent", 3, "")
    attempts = [(k, p["attempt"], p["error"]) for k, _, _, p in notifications(svc) if p["channel"] == "status-page"]
    assert attempts == [
        ("notification.failed", 1, "the webhook at 127.0.0.1 answered HTTP 503: no_service"),
        ("notification.failed", 2, "the webhook at 127.0.0.1 answered HTTP 500: no_service"),
        ("notification.sent", 3, ""),
    ]
    # Each retry is signed anew, and all three bodies name the same delivery.
    assert [r.signature_ok for r in hook.requests] == [True, True, True]
    assert len({r.headers["x-shiprail-delivery"] for r in hook.requests}) == 1


def test_a_failed_attempt_does_not_let_the_news_after_it_through_first(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, _ = receivers
    slack.statuses = [500]  # the first post fails once, then the receiver is fine
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=receivers[1].url, smtp_port=smtp.port), env=env)
    start_release(svc)
    t0 = svc.clock.now()
    drain(notifier, svc.clock)
    heard = [r.json()["text"].split("\n", 1)[0] for r in slack.requests]
    # The channel hears the release's news in the order it happened: the failed first post is
    # retried before the ones after it (it used to arrive last, after "started").
    assert heard == [
        "[shiprail] dana overrode the failed gate approvals of stage for checkout 2.4.0: " + REASON,
        "[shiprail] dana overrode the failed gate approvals of stage for checkout 2.4.0: " + REASON,
        "[shiprail] checkout 2.4.0 started its rollout at 1% by dana",
        "[shiprail] dana overrode the failed gates qa, tests, load_test of start for checkout 2.4.0: " + REASON,
    ]
    sent = [
        (p["event"], p["attempt"], at - t0) for k, _, at, p in notifications(svc) if p["channel"] == "releases-slack"
    ]
    assert sent == [
        ("override", 1, dt.timedelta(0)),
        ("override", 2, dt.timedelta(seconds=10)),
        ("started", 1, dt.timedelta(seconds=10)),
        ("override", 1, dt.timedelta(seconds=10)),
    ]
    # The other channels did not wait for this one.
    other = [at for k, _, at, p in notifications(svc) if p["channel"] != "releases-slack"]
    assert other and all(at == t0 for at in other)
    assert all(d.status == "sent" for d in deliveries(svc))


def test_a_receiver_that_asks_to_wait_with_retry_after_is_left_alone_that_long(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, _ = receivers
    slack.statuses, slack.retry_after = [429], "120"  # Slack's rate limit: HTTP 429, Retry-After in seconds
    notifier = Notifier(
        svc.store, svc.clock, channels(hook_url=receivers[1].url, smtp_port=smtp.port), env=env, backoff_s=10
    )
    start_release(svc)
    t0 = svc.clock.now()
    drain(notifier, svc.clock)
    slack_records = [(k, at, p) for k, _, at, p in notifications(svc) if p["channel"] == "releases-slack"]
    kind, first_at, first = slack_records[0]
    assert first_at == t0
    assert (kind, first["error"]) == (
        "notification.failed",
        f"the Slack webhook (${SLACK_ENV}) answered HTTP 429: no_service (retry after 120s)",
    )
    # The backoff alone would have retried after 10 s; the receiver asked for 120.
    assert first["retry_at"] == (t0 + dt.timedelta(seconds=120)).isoformat()
    retried = [at for k, at, p in slack_records if k == "notification.sent" and p["attempt"] == 2]
    assert retried == [t0 + dt.timedelta(seconds=120)]
    # It is the receiver that asked to be left alone: the channel's other messages waited too.
    assert len(slack_records) > 2
    assert all(at >= t0 + dt.timedelta(seconds=120) for _, at, _ in slack_records[1:])
    assert all(d.status == "sent" for d in deliveries(svc))


def test_an_email_some_recipients_refuse_is_a_failed_attempt_retried_only_to_them(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    """Before, a 550 for one recipient was audited as a clean notification.sent: bob never knew."""
    alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"
    smtp.mailbox.refuse = {bob: "550 5.1.1 bob: no such user"}
    configured = channels(hook_url=receivers[1].url, smtp_port=smtp.port)
    configured["oncall-email"] = EmailChannel(
        type="email", to=[alice, bob, carol], smtp_port=smtp.port, sender="shiprail@example.com"
    )
    notifier = Notifier(svc.store, svc.clock, configured, env=env, backoff_s=10)
    start_release(svc)
    t0 = svc.clock.now()
    where = f"the SMTP server 127.0.0.1:{smtp.port}"

    def email() -> tuple[Delivery, list[tuple[str, dict[str, Any]]]]:
        [d] = [d for d in deliveries(svc) if d.channel == "oncall-email"]
        return d, [(k, p) for k, _, _, p in notifications(svc) if p["channel"] == "oncall-email"]

    # Attempt 1: alice and carol take it, bob is refused; failed, and the audit says who has it.
    notifier.tick()
    d, records = email()
    assert [(frm, to) for frm, to, _ in smtp.mailbox.messages] == [("shiprail@example.com", [alice, carol])]
    [(kind, first)] = records
    assert kind == "notification.failed"
    assert (d.status, d.attempts, json.loads(d.delivered_to)) == ("pending", 1, [alice, carol])
    assert first["error"] == (
        f"{where} refused 1 of 3 recipients: {bob} (550 5.1.1 bob: no such user); it reached {alice}, {carol}"
    )
    assert (first["refused"], first["delivered_to"], first["final"]) == (
        {bob: "550 5.1.1 bob: no such user"},
        [alice, carol],
        False,
    )
    assert first["retry_at"] == (t0 + dt.timedelta(seconds=10)).isoformat()

    # Attempt 2 goes to bob alone, who is still refused: alice and carol get nothing more.
    svc.clock.sleep_until(t0 + dt.timedelta(seconds=10))
    notifier.tick()
    d, records = email()
    assert len(smtp.mailbox.messages) == 1
    assert records[-1][1]["error"] == f"{where} refused 1 of 1 recipient: {bob} (550 5.1.1 bob: no such user)"
    assert records[-1][1]["delivered_to"] == [alice, carol]

    # Bob's mailbox exists now: attempt 3 reaches him, and only him, with the same Message-ID.
    smtp.mailbox.refuse = {}
    drain(notifier, svc.clock)
    d, records = email()
    assert (d.status, d.attempts, d.last_error, json.loads(d.delivered_to)) == ("sent", 3, "", [alice, carol, bob])
    assert [to for _, to, _ in smtp.mailbox.messages] == [[alice, carol], [bob]]
    first_mail, retry_mail = (message_from_bytes(content) for _, _, content in smtp.mailbox.messages)
    assert retry_mail["Message-ID"] == first_mail["Message-ID"]
    assert retry_mail["To"] == f"{alice}, {bob}, {carol}"  # the header names everyone, as the first did
    assert [(k, p["attempt"], p.get("delivered_to")) for k, p in records] == [
        ("notification.failed", 1, [alice, carol]),
        ("notification.failed", 2, [alice, carol]),
        ("notification.sent", 3, [alice, carol, bob]),
    ]
    assert "refused" not in records[-1][1]
    assert chain_ok(svc)


def test_an_email_the_server_took_is_sent_even_if_its_quit_goes_wrong(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    """Before, a QUIT answered with anything but 221 failed the attempt, and the retry sent the mail again."""
    smtp.mailbox.quit_answer = "421 4.3.0 shutting down"
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=receivers[1].url, smtp_port=smtp.port), env=env)
    start_release(svc)
    drain(notifier, svc.clock)
    assert [to for _, to, _ in smtp.mailbox.messages] == [["oncall@example.com"]]
    [d] = [d for d in deliveries(svc) if d.channel == "oncall-email"]
    assert (d.status, d.attempts, json.loads(d.delivered_to)) == ("sent", 1, ["oncall@example.com"])


def test_a_missing_variable_or_channel_is_a_failed_attempt_that_names_it(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp
) -> None:
    _, hook = receivers
    configured = channels(hook_url=hook.url, smtp_port=smtp.port)
    del configured["oncall-email"]  # removed from shiprail.yaml after the release was created
    notifier = Notifier(svc.store, svc.clock, configured, env={}, attempts=2, backoff_s=1)
    start_release(svc)
    drain(notifier, svc.clock)
    errors = {d.channel: (d.status, d.last_error) for d in deliveries(svc) if d.event == "started"}
    assert errors == {
        "releases-slack": (
            "failed",
            f"the Slack webhook URL is missing: set {SLACK_ENV} where the notifier runs (channel releases-slack)",
        ),
        "status-page": (
            "failed",
            f"the webhook signing secret is missing: set {SECRET_ENV} where the notifier runs (channel status-page)",
        ),
        "oncall-email": (
            "failed",
            "channel 'oncall-email' is not defined in shiprail.yaml channels (defined: releases-slack, status-page)",
        ),
    }
    assert hook.requests == []  # an unsigned request is never sent in place of a signed one


def test_run_loops_on_the_injected_clock_until_stopped(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    """On a simulated clock ``run`` jumps to each retry: hours of backoff pass in moments."""
    down = f"http://127.0.0.1:{free_port()}/hooks/shiprail"
    configured = channels(hook_url=down, smtp_port=smtp.port)
    notifier = Notifier(svc.store, svc.clock, configured, env=env, attempts=6, backoff_s=600, backoff_max_s=3600)
    start_release(svc)
    t0 = svc.clock.now()

    def hook_failed() -> bool:
        return any(d.channel == "status-page" and d.status == "failed" for d in deliveries(svc))

    with running(notifier.run):
        deadline = time.monotonic() + 20
        while not hook_failed():
            assert time.monotonic() < deadline, "the notifier never gave up on the down channel"
            time.sleep(0.01)
    failed = [at for kind, _, at, p in notifications(svc) if kind == "notification.failed"]
    # 10 min, 20 min, 40 min, then the 1 h cap, twice.
    assert [(at - t0).total_seconds() / 60 for at in failed] == [0, 10, 30, 70, 130, 190]
    assert {d.status for d in deliveries(svc) if d.channel != "status-page"} == {"sent"}


def test_ticks_and_a_lost_cursor_never_duplicate_deliveries(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, hook = receivers
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=hook.url, smtp_port=smtp.port), env=env)
    start_release(svc)
    assert notifier.enqueue() == 5
    assert notifier.enqueue() == 0
    notifier.tick()
    notifier.tick()
    with svc.store.transaction() as s:
        s.get(Cursor, "notifier").seq = 0  # type: ignore[union-attr]
    assert notifier.enqueue() == 0
    notifier.tick()
    assert [(d.event, d.audience, d.channel) for d in deliveries(svc)] == UP_TO_STARTED
    assert len(slack.requests) == 3 and len(hook.requests) == 1 and len(smtp.mailbox.messages) == 1
    assert len(notifications(svc)) == 5


def test_two_notifiers_never_send_one_delivery_twice(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, hook = receivers
    slack.delay_s = hook.delay_s = 0.02  # slow enough that the two overlap
    configured = channels(hook_url=hook.url, smtp_port=smtp.port)
    sends: dict[str, list[int]] = {"one": [], "two": []}

    def counter(name: str) -> Any:
        return lambda rid, kind, payload: sends[name].append(payload["attempt"])

    one, two = (Notifier(svc.store, svc.clock, configured, env=env, on_event=counter(n)) for n in ("one", "two"))
    rids = [start_release(svc, version) for version in ("2.4.0", "2.4.1", "2.4.2")]
    for rid in rids:
        svc.act(rid, Action.PAUSE, "bob", reason="dashboards look odd")

    barrier = threading.Barrier(2)

    def race(n: Notifier) -> None:
        for _ in range(3):
            barrier.wait()
            n.tick()

    threads = [threading.Thread(target=race, args=(n,)) for n in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    all_ = deliveries(svc)
    assert len(all_) == 3 * (len(UP_TO_STARTED) + 1)  # + paused, to engineering
    assert {d.status for d in all_} == {"sent"}
    assert {d.attempts for d in all_} == {1}
    sent_ids = sorted(p["delivery_id"] for k, _, _, p in notifications(svc) if k == "notification.sent")
    assert sent_ids == [d.id for d in all_]
    # Each receiver got each delivery once.
    assert len(hook.requests) == 3 and len({r.headers["x-shiprail-delivery"] for r in hook.requests}) == 3
    assert len(slack.requests) == 3 * 4 == len({r.json()["text"] for r in slack.requests})
    assert len(smtp.mailbox.messages) == 3
    # Both took part: the claims, not luck, kept them apart.
    assert len(sends["one"]) + len(sends["two"]) == len(all_)
    print(f"notifier one sent {len(sends['one'])}, two sent {len(sends['two'])}")
    assert sends["one"] and sends["two"]
    assert chain_ok(svc)


def last_attempt_claimed(
    svc: Releases, hook: HttpReceiver, smtp: Smtp, env: dict[str, str]
) -> tuple[Notifier, outbox.Claimed | None]:
    """A notifier allowed one attempt, and that attempt of the status-page delivery claimed (not sent)."""
    notifier = Notifier(
        svc.store, svc.clock, channels(hook_url=hook.url, smtp_port=smtp.port), env=env, attempts=1, claim_s=60
    )
    start_release(svc)
    notifier.enqueue()
    with svc.store.transaction() as s:
        [item] = [i for i in outbox.due(s, svc.clock.now()) if i.channel == "status-page"]
        return notifier, outbox.claim(s, item, svc.clock.now(), claim_s=60, max_attempts=1)


def test_a_last_attempt_whose_notifier_died_is_recorded_as_failed(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    _, hook = receivers
    notifier, claimed = last_attempt_claimed(svc, hook, smtp, env)
    assert claimed is not None and claimed.attempt == 1
    # ... and the process holding the claim is killed here; nobody else may send it meanwhile.
    notifier.tick()
    assert hook.requests == []
    assert isinstance(svc.clock, SimulatedClock)
    svc.clock.advance(61)
    notifier.tick()
    [d] = [d for d in deliveries(svc) if d.channel == "status-page"]
    assert (d.status, d.attempts) == ("failed", 1)
    assert d.last_error == "attempt 1 of 1 was never recorded (its notifier stopped); giving up"
    assert hook.requests == []
    [(kind, payload)] = [(k, p) for k, _, _, p in notifications(svc) if p["channel"] == "status-page"]
    assert (kind, payload["attempt"], payload["final"]) == ("notification.failed", 1, True)


def test_a_last_attempt_that_was_sent_after_all_is_recorded_as_sent(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    # A slow send outlived its claim; another notifier gave the delivery up as failed; then the
    # send went through. The audit trail said notification.sent while the row stayed failed.
    _, hook = receivers
    notifier, claimed = last_attempt_claimed(svc, hook, smtp, env)
    assert claimed is not None
    assert isinstance(svc.clock, SimulatedClock)
    svc.clock.advance(61)
    notifier.tick()  # the claim lapsed on the last attempt: given up
    [d] = [d for d in deliveries(svc) if d.channel == "status-page"]
    assert d.status == "failed"
    with svc.store.transaction() as s:
        status = outbox.record(s, claimed, svc.clock.now(), None, max_attempts=1, backoff_s=10, backoff_max_s=60)
    assert status == "sent"
    [d] = [d for d in deliveries(svc) if d.channel == "status-page"]
    assert (d.status, d.last_error, d.sent_at) == ("sent", "", svc.clock.now())
    kinds = [k for k, _, _, p in notifications(svc) if p["channel"] == "status-page"]
    assert kinds == ["notification.failed", "notification.sent"]


def test_a_new_notifier_on_an_old_store_announces_only_what_happens_from_now(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, _ = receivers
    rid = start_release(svc)
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(dt.timedelta(days=2))
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=slack.url, smtp_port=smtp.port), env=env)
    assert notifier.enqueue() == 0
    svc.act(rid, Action.PAUSE, "bob", reason="dashboards look odd")
    assert notifier.tick() is None
    assert [(d.event, d.status) for d in deliveries(svc)] == [("paused", "sent")]
    assert [r.json()["text"].split("\n")[0] for r in slack.requests] == [
        "[shiprail] checkout 2.4.0 paused by bob: dashboards look odd"
    ]


# ------------------------------------------------------------------------------------------- STARTTLS


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp(tls_files: tuple[Path, Path]) -> Iterator[Smtp]:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*tls_files)
    controller, server = start_smtp(tls_context=server_tls, require_starttls=True)
    yield server
    controller.stop()


def test_email_over_starttls(
    svc: Releases,
    tls_smtp: Smtp,
    tls_files: tuple[Path, Path],
    smtp: Smtp,
    receivers: tuple[HttpReceiver, HttpReceiver],
) -> None:
    """A server that requires STARTTLS gets the mail encrypted; one that does not offer it gets none."""
    slack, _ = receivers
    trusted = ssl.create_default_context(cafile=str(tls_files[0]))
    secure: dict[str, ChannelConfig] = {
        "oncall-email": EmailChannel(type="email", to=["oncall@example.com"], smtp_port=tls_smtp.port, starttls=True),
        "status-page": WebhookChannel(type="webhook", url=slack.url),
    }
    notifier = Notifier(svc.store, svc.clock, secure, env={}, tls=trusted, attempts=1)
    start_release(svc)
    notifier.tick()
    [(_, _, content)] = tls_smtp.mailbox.messages
    assert message_from_bytes(content)["Subject"] == "[shiprail] checkout-2.4.0 started"
    # Unsigned (no secret_env): no signature headers at all.
    [request] = slack.requests
    assert request.json()["event"] == "started"
    assert "x-shiprail-signature" not in request.headers and request.headers["x-shiprail-timestamp"].isdigit()

    # The same channel pointed at a plain server: refused, never sent in clear.
    plain: dict[str, ChannelConfig] = {
        "oncall-email": EmailChannel(type="email", to=["x@example.com"], smtp_port=smtp.port, starttls=True)
    }
    rid = start_release(svc, "2.4.1")
    other = Notifier(svc.store, svc.clock, plain, env={}, cursor="notifier-plain", attempts=1)
    other.tick()
    [d] = [d for d in deliveries(svc) if d.release_id == rid and d.channel == "oncall-email"]
    assert (d.status, d.last_error) == (
        "failed",
        f"the SMTP server 127.0.0.1:{smtp.port} does not offer STARTTLS, and channel oncall-email requires it",
    )
    assert smtp.mailbox.messages == []


def _login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"shiprail", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_smtp(tls_files: tuple[Path, Path]) -> Iterator[Smtp]:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*tls_files)
    controller, server = start_smtp(
        tls_context=server_tls, require_starttls=True, authenticator=_login, auth_required=True
    )
    yield server
    controller.stop()


def test_email_logs_in_after_starttls_and_says_why_when_it_cannot(
    svc: Releases, auth_smtp: Smtp, tls_files: tuple[Path, Path]
) -> None:
    """A server that requires SMTP AUTH gets the login over TLS; a wrong or missing password fails the attempt."""
    trusted = ssl.create_default_context(cafile=str(tls_files[0]))
    channel = EmailChannel(
        type="email",
        to=["oncall@example.com"],
        smtp_port=auth_smtp.port,
        starttls=True,
        username="shiprail",
        password_env="TEST_SMTP_PASSWORD",
    )
    outcomes = {}
    for version, cursor, env in (
        ("2.4.0", "right", {"TEST_SMTP_PASSWORD": "s3cret"}),
        ("2.4.1", "wrong", {"TEST_SMTP_PASSWORD": "guess"}),
        ("2.4.2", "missing", {}),
    ):
        rid = start_release(svc, version)
        notifier = Notifier(
            svc.store, svc.clock, {"oncall-email": channel}, env=env, tls=trusted, cursor=cursor, attempts=1
        )
        notifier.tick()
        [d] = [
            d for d in deliveries(svc) if d.release_id == rid and d.channel == "oncall-email" and d.event == "started"
        ]
        outcomes[cursor] = (d.status, d.last_error)
    where = f"the SMTP server 127.0.0.1:{auth_smtp.port}"
    assert outcomes == {
        "right": ("sent", ""),
        "wrong": ("failed", f"{where} refused the login of shiprail (535)"),
        "missing": (
            "failed",
            "the SMTP password is missing: set TEST_SMTP_PASSWORD where the notifier runs (channel oncall-email)",
        ),
    }
    assert len(auth_smtp.mailbox.messages) == 1


def test_an_email_login_without_starttls_is_refused_in_the_policy() -> None:
    with pytest.raises(ValidationError, match=r"username needs starttls: true \(shiprail never sends a password"):
        EmailChannel(type="email", to=["x@example.com"], username="shiprail", password_env="TEST_SMTP_PASSWORD")
    with pytest.raises(ValidationError, match="username needs password_env"):
        EmailChannel(type="email", to=["x@example.com"], username="shiprail", starttls=True)


class DownRouter(FakeRouter):
    """Refuses every call while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def set_weight(self, weight: float) -> None:
        if self.down:
            raise RouterError("cannot connect to /run/haproxy/admin.sock: connection refused")
        super().set_weight(weight)


def test_a_rollback_stuck_behind_a_down_router_is_announced_once_and_so_is_its_recovery(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, env: dict[str, str]
) -> None:
    slack, hook = receivers
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=hook.url, smtp_port=smtp.port), env=env)
    rid = start_release(svc)
    router = DownRouter()
    metrics = Metrics(svc.clock, "2.4.0")
    ctl = Controller(svc, routers=lambda r: router, providers=lambda r: metrics)  # type: ignore[arg-type,return-value]
    ctl.tick()
    router.down = True
    svc.act(rid, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    decided = svc.clock.now()
    assert isinstance(svc.clock, SimulatedClock)
    while svc.clock.now() < decided + dt.timedelta(minutes=30):  # half an hour of outage
        drain(notifier, svc.clock)
        wake = ctl.tick()
        assert wake is not None
        svc.clock.sleep_until(wake)
    router.down = False
    ctl.run(until_done=True)
    drain(notifier, svc.clock)
    assert svc.get(rid).status == "rolled_back"

    # Everyone who hears rolled_back hears, once each, that the revert is stuck, then that it went through.
    after = [(d.event, d.audience, d.channel, d.status) for d in deliveries(svc)][len(UP_TO_STARTED) :]
    audiences = [("engineering", "releases-slack"), ("support", "status-page"), ("on-call", "oncall-email")]
    assert after == [
        (event, audience, channel, "sent")
        for event in ("rolled_back", "revert_stuck", "revert_recovered", "rolled_back")
        for audience, channel in audiences
    ]
    texts = [r.json()["text"].split("\n")[0] for r in slack.requests][-4:]
    assert texts == [
        "[shiprail] checkout 2.4.0 is rolling back by bob: pager: checkout 5xx",
        "[shiprail] checkout 2.4.0 is NOT rolled back yet: the router has not confirmed weight 0 2m23s after "
        "the rollback was decided: cannot connect to /run/haproxy/admin.sock: connection refused",
        "[shiprail] checkout 2.4.0's stuck rollback went through: the router confirmed weight 0 30m11s after "
        "the rollback was decided",
        "[shiprail] checkout 2.4.0 rolled back: the router confirmed weight 0",
    ]
    mails = [message_from_bytes(content) for _, _, content in smtp.mailbox.messages]
    assert [m["Subject"] for m in mails][-3:] == [
        f"[shiprail] {rid} revert_stuck",
        f"[shiprail] {rid} revert_recovered",
        f"[shiprail] {rid} rolled_back",
    ]
    assert [r.json()["event"] for r in hook.requests][-3:] == ["revert_stuck", "revert_recovered", "rolled_back"]
    assert chain_ok(svc)


def test_a_store_that_cuts_its_connections_mid_attempt_costs_one_line_not_a_traceback(
    svc: Releases,
    receivers: tuple[HttpReceiver, HttpReceiver],
    smtp: Smtp,
    env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL restarting (here pg_terminate_backend on the store's connections, as in a failover)
    # while a delivery is claimed or recorded: each printed a 60-line traceback into the
    # controller's log (seen with two controllers and serve on one database), where every other
    # part of the controller says the store is away in one line.
    if svc.store.dialect != "postgresql":
        pytest.skip("cutting a connection from the server's side is PostgreSQL's")
    cut = connection_cutter(svc.store)

    sent: list[str] = []

    def send(channel: ChannelConfig, message: Message) -> list[str]:
        sent.append(message.event)
        cut()  # the delivery is claimed and sent: recording it fails
        return []

    configured = channels(hook_url=receivers[1].url, smtp_port=smtp.port)
    notifier = Notifier(svc.store, svc.clock, configured, env=env, send=send)
    start_release(svc)
    notifier.enqueue()
    with svc.store.transaction() as s:
        item = outbox.due(s, svc.clock.now())[0]
    cut()  # claiming it fails
    caplog.set_level(logging.WARNING, logger="shiprail.notifiers.notifier")
    assert notifier.attempt(item) is None
    assert notifier.attempt(item) is True  # claimed and sent; its record is lost with the connection
    said = [(r.getMessage(), r.exc_info) for r in caplog.records if r.name == "shiprail.notifiers.notifier"]
    assert said == [
        (
            f"delivery {item.id}: cannot claim it: the store failed: terminating connection due to administrator "
            "command; trying again at the next pass",
            None,
        ),
        (
            f"delivery {item.id}: cannot record attempt 1: the store failed: terminating connection due to "
            "administrator command; its claim lapses and it is sent again (it may arrive twice)",
            None,
        ),
    ]
    assert sent == ["override"]
    assert chain_ok(svc)


def test_a_release_waiting_for_approval_is_announced_with_the_approvals_it_still_needs(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], env: dict[str, str]
) -> None:
    """GitLab tells the approvers of a deployment that waits for them; shiprail told nobody: created, asked
    again after `release update`, short again after a revocation, a release waits for approval in silence."""
    slack, hook = receivers
    plan = Path("releases/checkout-2.4.0.yaml")
    plan.write_text(plan.read_text().replace("on: [approved, started,", "on: [awaiting_approval, approved, started,"))
    notifier = Notifier(svc.store, svc.clock, channels(hook_url=hook.url), env=env)
    rid = svc.create(check_plan_file(plan), "alice").id
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.revoke_approval(rid, "carol")
    svc.revoke_approval(rid, "bob")  # still waiting, now for one more
    svc.approve(rid, "bob")
    plan.write_text(plan.read_text().replace("min_samples: 200", "min_samples: 300"))
    svc.update_plan(rid, check_plan_file(plan), "alice")
    drain(notifier, svc.clock)
    approve = f"approve it with `shiprail release approve {rid}`"
    assert [r.json()["text"].split("\n")[0] for r in slack.requests] == [
        f"[shiprail] checkout 2.4.0 is waiting for approval: gate approvals of release {rid} needs 2 more approvals "
        f"(0 of 2 given); {approve}",
        "[shiprail] checkout 2.4.0 was approved by bob",
        "[shiprail] checkout 2.4.0 was approved by carol",
        f"[shiprail] checkout 2.4.0 is waiting for approval: gate approvals of release {rid} needs 1 more approval "
        f"(1 of 2 given); {approve}",
        f"[shiprail] checkout 2.4.0 is waiting for approval: gate approvals of release {rid} needs 2 more approvals "
        f"(0 of 2 given); {approve}",
        "[shiprail] checkout 2.4.0 was approved by bob",
        f"[shiprail] checkout 2.4.0 is waiting for approval: gate approvals of release {rid} needs 2 more approvals "
        f"(0 of 2 given); {approve}",
    ]
    with svc.store.transaction() as s:
        awaited = [json.loads(r.payload) for r in audit.rows(s) if r.kind == "approval.awaited"]
    assert awaited[1] == {"gate": "approvals", "required": 2, "approvers": ["bob"], "needed": 1}
