"""The controller's backoff after failed passes (docs/rollout.md, "Failures of one release stay with it")."""

from __future__ import annotations

from datetime import timedelta

from shiprail import defaults
from shiprail.controller.reconciler import retry_delay


def test_a_failed_weight_backs_off_from_5_s_doubling_to_5_minutes() -> None:
    waits = [retry_delay(n, 10.0) for n in range(1, 9)]
    assert waits == [timedelta(seconds=s) for s in (5, 10, 20, 40, 80, 160, 300, 300)]
    assert waits[-1] == timedelta(seconds=defaults.ROUTER_RETRY_MAX_SECONDS)


def test_a_rollback_and_a_pass_that_raised_back_off_to_1_minute_at_most() -> None:
    # A pass that raised may have been a rollback's: it never waits longer than a revert would.
    for weight in (0.0, None):
        waits = [retry_delay(n, weight) for n in range(1, 6)]
        assert waits == [timedelta(seconds=s) for s in (5, 10, 20, 40, 60)]
    assert retry_delay(40, None) == timedelta(seconds=defaults.ROLLBACK_RETRY_MAX_SECONDS)
