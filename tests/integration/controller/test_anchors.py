"""The controller anchors the audit chain (shiprail.yaml's audit.anchors) on a simulated clock.

What is pinned: an anchor at the first pass, then at most every anchor_every and only when the head
moved; a failure (a full disk, a chain that does not verify) logged once per kind, tried again after
the retry delay, and never in the way of driving releases; the anchors it wrote verify the chain.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from shiprail import defaults
from shiprail.clock import SimulatedClock
from shiprail.controller import Controller
from shiprail.releases import Releases
from shiprail.schema.policy import AuditPolicy
from shiprail.store import audit
from shiprail.store.anchors import as_checks, parse_log
from tests.integration.controller.test_controller import FakeRouter, controller, started, svc
from tests.integration.store.chain import set_row, tampering

__all__ = ["started", "svc"]

EVERY = 15 * 60
LOG = "audit/anchors.jsonl"


@pytest.fixture
def anchoring(svc: Releases, project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The policy's audit.anchors set to audit/anchors.jsonl (15m); the log's path."""
    monkeypatch.delenv("SHIPRAIL_AUDIT_KEY", raising=False)
    svc.policy = svc.policy.model_copy(update={"audit": AuditPolicy(anchors=LOG, anchor_every=EVERY)})
    (project / "audit").mkdir()
    return project / LOG


def anchored(log: Path) -> list[int]:
    """The seqs the log's anchors record, in order."""
    if not log.exists():
        return []
    return [json.loads(line)["seq"] for line in log.read_text(encoding="utf-8").splitlines()]


def event(svc: Releases, n: int = 1) -> int:
    """Append ``n`` events; the chain's new head seq."""
    for _ in range(n):
        with svc.store.transaction() as s:
            audit.append(s, at=svc.clock.now(), actor="bob", kind="note", release_id=None, payload={})
    return head_seq(svc)


def head_seq(svc: Releases) -> int:
    with svc.store.transaction() as s:
        return audit.head(s)[0]


def ctl_for(svc: Releases, project: Path) -> Controller:
    return controller(svc, FakeRouter(), project_root=project)


def advance(svc: Releases, seconds: float) -> None:
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(seconds)


def test_anchors_only_when_due_and_the_head_moved(svc: Releases, project: Path, anchoring: Path) -> None:
    first = event(svc, 3)
    ctl = ctl_for(svc, project)
    ctl.tick()
    assert anchored(anchoring) == [first]
    line = json.loads(anchoring.read_text(encoding="utf-8"))
    assert line["at"] == svc.clock.now().isoformat()  # the injected clock's time

    # The head moved, but anchor_every has not passed: nothing.
    second = event(svc, 2)
    advance(svc, EVERY - 1)
    ctl.tick()
    assert anchored(anchoring) == [first]
    advance(svc, 1)
    ctl.tick()
    assert anchored(anchoring) == [first, second]

    # Time passes with no event: nothing, however long.
    for _ in range(4):
        advance(svc, EVERY)
        ctl.tick()
    assert anchored(anchoring) == [first, second]
    # An event after a long quiet spell is anchored at the next pass.
    third = event(svc)
    ctl.tick()
    assert anchored(anchoring) == [first, second, third]


def test_a_new_controller_keeps_to_the_interval_the_log_shows(svc: Releases, project: Path, anchoring: Path) -> None:
    first = event(svc)
    ctl_for(svc, project).tick()
    event(svc)
    advance(svc, 60)
    # Restarted (or a second controller): the last anchor is a minute old, so none is written yet...
    other = ctl_for(svc, project)
    other.tick()
    assert anchored(anchoring) == [first]
    advance(svc, EVERY)
    other.tick()
    assert anchored(anchoring) == [first, head_seq(svc)]


def test_a_controller_for_chosen_releases_does_not_anchor(svc: Releases, project: Path, anchoring: Path) -> None:
    event(svc)
    controller(svc, FakeRouter(), project_root=project, only=["nope"]).tick()
    assert anchored(anchoring) == []


def test_a_full_disk_is_logged_once_and_tried_again_after_the_retry_delay(
    svc: Releases, project: Path, anchoring: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    event(svc)
    real_write = os.write
    full = {"on": True}

    def write(fd: int, data: bytes) -> int:
        if full["on"] and data.startswith(b'{"at"'):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("shiprail.store.anchors.os.write", write)
    ctl = ctl_for(svc, project)
    with caplog.at_level(logging.WARNING, logger="shiprail.controller.reconciler"):
        for _ in range(3):
            ctl.tick()
            advance(svc, defaults.ANCHOR_RETRY_SECONDS)
    said = [r.getMessage() for r in caplog.records if "audit anchors" in r.getMessage()]
    assert said == [
        f"audit anchors: no anchor written to {LOG}: {LOG} cannot be written (No space left on device); "
        "nothing was written; trying again later"
    ]
    assert anchoring.read_bytes() == b""
    full["on"] = False
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shiprail.controller.reconciler"):
        ctl.tick()
    assert anchored(anchoring) == [head_seq(svc)]
    assert [r.getMessage() for r in caplog.records] == [
        f"audit anchors: {LOG} is written to again",
        f"audit anchors: SHIPRAIL_AUDIT_KEY is not set, so the anchors written to {LOG} are not signed and can be "
        "forged",
    ]


def test_a_broken_chain_is_never_anchored_and_releases_are_still_driven(
    svc: Releases, project: Path, anchoring: Path, started: str, caplog: pytest.LogCaptureFixture
) -> None:
    event(svc)
    with tampering(svc.store) as s:
        set_row(s, 2, {"actor": "mallory"})
    router = FakeRouter()
    ctl = controller(svc, router, project_root=project)
    with caplog.at_level(logging.WARNING, logger="shiprail.controller.reconciler"):
        ctl.tick()
        advance(svc, 600)
        ctl.tick()
        advance(svc, 600)
        ctl.tick()
    assert anchoring.read_bytes() == b""
    said = [r.getMessage() for r in caplog.records if "audit anchors" in r.getMessage()]
    assert said == [
        f"audit anchors: no anchor written to {LOG}: audit chain broken at seq 2: seq 2 was altered: its content "
        "no longer matches its hash; an anchor never blesses a broken chain, so nothing was written; trying again "
        "later"
    ]
    assert router.calls == [1]  # the release was driven all the same
    assert ctl.failed == []


def test_the_anchors_the_controller_wrote_verify_the_chain(
    svc: Releases, project: Path, anchoring: Path, started: str
) -> None:
    ctl = ctl_for(svc, project)
    for _ in range(12):
        ctl.tick()
        advance(svc, 600)
    seqs = anchored(anchoring)
    assert len(seqs) >= 3 and seqs == sorted(set(seqs))
    with svc.store.transaction() as s:
        seq, digest = audit.head(s)
        checks = as_checks(parse_log(anchoring.read_bytes()), LOG)
        assert audit.verify(audit.rows(s), head_seq=seq, head_hash=digest, anchors=checks).ok


def test_no_anchor_log_in_the_policy_means_no_anchors(svc: Releases, project: Path) -> None:
    event(svc)
    ctl_for(svc, project).tick()
    assert not (project / "audit").exists()
    assert not list(project.glob("**/*.jsonl"))


def test_an_anchor_dated_in_the_future_does_not_stop_anchoring(svc: Releases, project: Path, anchoring: Path) -> None:
    """A clock set a day ahead (a host without NTP, a VM resumed) or a forged line dated later: the
    controller anchors again once the head moved, not only after that date (plus anchor_every)."""
    first = event(svc, 2)
    ahead = (svc.clock.now() + timedelta(days=1)).isoformat()
    with svc.store.transaction() as s:
        digest = audit.head(s)[1]
    anchoring.write_text(json.dumps({"seq": first, "hash": digest, "at": ahead}) + "\n", encoding="utf-8")
    ctl = ctl_for(svc, project)
    ctl.tick()
    assert anchored(anchoring) == [first]  # the head did not move
    later = event(svc, 3)
    advance(svc, EVERY)
    ctl.tick()
    assert anchored(anchoring) == [first, later]


def test_a_log_locked_by_another_process_does_not_hold_up_the_pass(
    svc: Releases,
    project: Path,
    anchoring: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Someone holds the log's lock (`flock anchors.jsonl -c ...` while rotating it, a hung writer
    on a network share): the controller's pass, which drives every release, must not wait for it."""
    monkeypatch.setattr(defaults, "ANCHOR_LOCK_WAIT_SECONDS", 0.3)
    event(svc)
    anchoring.touch()
    holder = os.open(anchoring, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    ctl = ctl_for(svc, project)
    finished = threading.Event()
    try:
        with caplog.at_level(logging.WARNING, logger="shiprail.controller.reconciler"):
            worker = threading.Thread(target=lambda: (ctl.tick(), finished.set()), daemon=True)
            worker.start()
            worker.join(5)
            assert finished.is_set()
    finally:
        os.close(holder)
    said = [r.getMessage() for r in caplog.records if "audit anchors" in r.getMessage()]
    assert said == [
        f"audit anchors: no anchor written to {LOG}: {LOG} is locked by another process (for more than 0.3 s); "
        "nothing was written; trying again later"
    ]
    assert anchored(anchoring) == []
    advance(svc, defaults.ANCHOR_RETRY_SECONDS)
    ctl.tick()
    assert anchored(anchoring) == [head_seq(svc)]


def test_the_controller_metrics_show_the_newest_anchor_and_count_failures(
    svc: Releases, project: Path, anchoring: Path
) -> None:
    # Without a metric, an anchor log that stopped growing was seen only by a cron of
    # `audit verify --max-anchor-age`; Prometheus now alerts on it like on the controller's loop.
    from prometheus_client import generate_latest

    def value(health: object, series: str) -> float:
        text = generate_latest(health.registry).decode()  # type: ignore[attr-defined]
        [line] = [x for x in text.splitlines() if x.startswith(series + " ")]
        return float(line.split()[-1])

    first = event(svc, 2)
    ctl = ctl_for(svc, project)
    health = ctl.report_health()
    ctl.tick()
    taken = svc.clock.now().timestamp()
    assert value(health, "shiprail_audit_last_anchor_seq") == first
    assert value(health, "shiprail_audit_last_anchor_timestamp_seconds") == taken
    with tampering(svc.store) as s:
        set_row(s, first, {"actor": "mallory"})
    event(svc)
    advance(svc, EVERY)
    ctl.tick()
    assert value(health, 'shiprail_audit_anchor_failures_total{kind="chain"}') == 1
    assert value(health, "shiprail_audit_last_anchor_seq") == first  # still the newest one written
    assert value(health, "shiprail_audit_last_anchor_timestamp_seconds") == taken
