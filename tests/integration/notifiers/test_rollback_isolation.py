"""A channel that hangs never delays a rollback: measured, on a real store.

The controller rolls a release back (fake router and provider, simulated clock, real store) while
a notifier thread on the wall clock tries to deliver that very release's events to channels that
accept a connection and never answer (HTTP and SMTP), so the notifier is stuck in a send the
whole time. The controller's wall time from "metrics turned bad" to ``rolled_back`` is measured
without a notifier, with a notifier on healthy receivers, and with the hung channels; the hung
case must be about as fast as the others, and far below the notifier's send timeout.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import select

from shiprail.clock import WallClock
from shiprail.notifiers.notifier import Notifier
from shiprail.releases import Releases
from shiprail.store.models import Delivery
from tests.integration.notifiers.conftest import (
    SECRET,
    SECRET_ENV,
    SLACK_ENV,
    HttpReceiver,
    HungServer,
    Metrics,
    Smtp,
    channels,
    controller,
    running,
    start_release,
)

TRIALS = 3
# How long the notifier waits on the hung channel per attempt: a rollback that waited once would
# take at least this long. Large enough that half of it stands well clear of a rollback's own time
# on a loaded CI machine (1.7 s seen with three workers on two cores, where a quiet run takes 0.2 s).
HANG_TIMEOUT_S = 5.0


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def rollback_seconds(svc: Releases, version: str, notifier: Notifier | None, hung: HungServer | None) -> float:
    """Start a release, let the notifier get going on it, then time the controller rolling it back."""
    rid = start_release(svc, version)
    metrics = Metrics(svc.clock, version)
    ctl = controller(svc, lambda r: metrics, only={rid})
    ctl.tick()  # 1% applied; the release's first events are queued for the notifier
    context: AbstractContextManager[Any] = running(notifier.run) if notifier is not None else nullcontext()
    with context:
        if notifier is not None:
            # The notifier is at work on this release's deliveries (or, hung, stuck inside a send).
            wait_for(lambda: any(d.release_id == rid for d in _deliveries(svc)))
            if hung is not None:
                wait_for(lambda: len(notifier.busy()) == 3)
        busy_before = notifier.busy() if notifier is not None else set()
        metrics.bad = True
        t0 = time.perf_counter()
        ctl.run(until_done=True)
        elapsed = time.perf_counter() - t0
        assert svc.get(rid).status == "rolled_back"
        if hung is not None:
            assert notifier is not None
            # It was stuck in the hung channels the whole time the controller rolled back...
            assert busy_before == notifier.busy() == {"releases-slack", "status-page", "oncall-email"}
            # ... and still queued the rollback's own notifications meanwhile.
            wait_for(lambda: sum(d.event == "rolled_back" and d.release_id == rid for d in _deliveries(svc)) == 6)
    return elapsed


def _deliveries(svc: Releases) -> list[Delivery]:
    with svc.store.transaction() as s:
        return list(s.execute(select(Delivery)).scalars())


def test_a_hung_channel_never_delays_a_rollback(
    svc: Releases, receivers: tuple[HttpReceiver, HttpReceiver], smtp: Smtp, hung: HungServer
) -> None:
    slack, hook = receivers
    common: dict[str, Any] = {"timeout_s": HANG_TIMEOUT_S, "poll_s": 0.05, "max_age_s": None}

    def healthy() -> Notifier:
        env = {SLACK_ENV: slack.url, SECRET_ENV: SECRET}
        configured = channels(hook_url=hook.url, smtp_port=smtp.port)
        return Notifier(svc.store, WallClock(), configured, env=env, **common)

    def stuck() -> Notifier:
        env = {SLACK_ENV: hung.url, SECRET_ENV: SECRET}
        configured = channels(hook_url=hung.url, smtp_port=hung.port)
        return Notifier(
            svc.store, WallClock(), configured, env=env, attempts=1000, backoff_s=0.01, backoff_max_s=0.01, **common
        )

    times: dict[str, list[float]] = {"no notifier": [], "healthy channels": [], "hung channels": []}
    for trial in range(TRIALS):
        # Interleaved, so drift (a warming cache, a growing audit chain) touches every condition alike.
        times["no notifier"].append(rollback_seconds(svc, f"2.4.{10 + 3 * trial}", None, None))
        times["healthy channels"].append(rollback_seconds(svc, f"2.4.{11 + 3 * trial}", healthy(), None))
        times["hung channels"].append(rollback_seconds(svc, f"2.4.{12 + 3 * trial}", stuck(), hung))

    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nrollback wall time on {svc.store.dialect} ({TRIALS} trials, hung send timeout {HANG_TIMEOUT_S:g}s):")
    for k, v in times.items():
        print(f"  {k:18} median {medians[k] * 1000:7.1f} ms   trials {', '.join(f'{x * 1000:.1f}' for x in v)} ms")
    assert hung.accepted >= 3 * TRIALS  # the hung channels were really contacted
    base = max(medians["no notifier"], medians["healthy channels"])
    assert medians["hung channels"] <= max(3 * base, base + 0.3)
    # Never once did the controller wait for the hung channels.
    assert max(times["hung channels"]) < HANG_TIMEOUT_S / 2
