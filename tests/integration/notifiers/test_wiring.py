"""Where the notifier runs: beside ``shiprail serve``'s controller, and in ``shiprail controller``."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from shiprail.cli.main import main
from shiprail.clock import WallClock
from shiprail.serve import create_app
from shiprail.store.db import Store
from tests.integration.notifiers.conftest import SECRET, HttpReceiver, Smtp
from tests.support.serving import serving

PLAN = "releases/checkout-2.4.0.yaml"


def test_serve_runs_the_notifier_in_a_thread_and_stops_it_at_shutdown(sqlite_store: Store) -> None:
    seen: dict[str, Any] = {}
    started = threading.Event()

    def notifier(stop: threading.Event) -> None:
        seen["thread"] = threading.current_thread().name
        started.set()
        stop.wait()
        seen["stopped"] = True

    with serving(create_app(sqlite_store, WallClock(), {}, notifier=notifier)):
        assert started.wait(5)
        assert "stopped" not in seen
    assert seen == {"thread": "shiprail-notifier", "stopped": True}


@pytest.fixture
def cli_receivers() -> Iterator[tuple[HttpReceiver, HttpReceiver]]:
    slack, hook = HttpReceiver(WallClock()), HttpReceiver(WallClock(), secret=SECRET)
    yield slack, hook
    slack.close()
    hook.close()


def test_controller_once_delivers_what_happened(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cli_receivers: tuple[HttpReceiver, HttpReceiver],
    smtp: Smtp,
) -> None:
    """The example project's channels, pointed at local receivers; ``controller --once`` sends."""
    slack, hook = cli_receivers
    monkeypatch.chdir(project)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    monkeypatch.setenv("SHIPRAIL_USER", "alice")
    monkeypatch.setenv("SHIPRAIL_SLACK_URL", slack.url)
    monkeypatch.setenv("SHIPRAIL_WEBHOOK_SECRET", SECRET)
    policy = yaml.safe_load(Path("shiprail.yaml").read_text())
    policy["channels"]["status-page"]["url"] = hook.url
    policy["channels"]["oncall-email"]["smtp_port"] = smtp.port
    Path("shiprail.yaml").write_text(yaml.safe_dump(policy))
    # A medium-risk release without stage checks (as tests/integration/cli does), approved and started.
    text = Path(PLAN).read_text().replace("tags: [payments]", "tags: [checkout]")
    Path(PLAN).write_text(text[: text.index("stage:")] + text[text.index("rollout:") :])
    capsys.readouterr()
    assert main(["release", "create", PLAN, "--json"]) == 0
    rid = json.loads(capsys.readouterr().out)["id"]
    for args in (["release", "approve", rid, "--as", "bob"], ["release", "stage", rid], ["release", "start", rid]):
        assert main(args) == 0, capsys.readouterr().err

    main(["controller", "--once"])  # the example's nginx is not there: the router call fails, that is all
    out = capsys.readouterr().out

    assert [r.json()["text"].split("\n")[0] for r in slack.requests] == [
        "[shiprail] checkout 2.4.0 was approved by bob",
        "[shiprail] checkout 2.4.0 started its rollout at 1% by alice",
    ]
    assert [(r.json()["event"], r.signature_ok) for r in hook.requests] == [("started", True)]
    [(_, _, mail)] = smtp.mailbox.messages
    assert message_from_bytes(mail)["Subject"] == f"[shiprail] {rid} started"
    assert f"{rid} notification.sent started to support via status-page, attempt 1: sent" in " ".join(out.split())


def test_the_notifier_loop_logs_a_store_outage_in_one_line(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # The database away (here a table it reads is gone) is an outage, not a bug: one line when it
    # starts, not one per poll, no traceback, in the controller's journal; the loop carries on and
    # says when the store answers again.
    from shiprail.notifiers.notifier import Notifier

    with sqlite_store.transaction() as s:
        s.execute(text("ALTER TABLE cursors RENAME TO cursors_away"))
    notifier = Notifier(sqlite_store, WallClock(), {}, poll_s=0.05)
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="shiprail.notifiers.notifier")
    thread = threading.Thread(target=notifier.run, args=(stop,))
    thread.start()
    time.sleep(0.5)  # about ten polls
    with sqlite_store.transaction() as s:
        s.execute(text("ALTER TABLE cursors_away RENAME TO cursors"))
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("notifier: cannot reach the store: no such table: cursors; looking again every 0.05s", None),
        ("notifier: the store answers again", None),
    ]
