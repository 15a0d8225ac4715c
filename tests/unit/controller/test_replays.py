"""The regression tests a controller keeps between analyses: fed only what was stored since."""

from __future__ import annotations

from shiprail.controller.replays import ReleaseReplays
from shiprail.judges.contract import Increment, replayed
from shiprail.schema.plan import Regression, Trigger


def trigger(name: str = "errors", alpha: float = 0.01) -> Trigger:
    return Trigger(name=name, metric="error_rate", regression=Regression(alpha=alpha))


def test_each_trigger_is_fed_what_was_read_since_it_was_last_asked() -> None:
    first = [Increment(100, 900, 1, 9), Increment(100, 900, 3, 9)]
    later = [Increment(100, 900, 5, 9)]
    kept = ReleaseReplays()
    kept.read({"errors": first, "other": [Increment(1, 1, 0, 0)]}, 7)
    test = kept.replay(trigger(), "error_rate")
    assert test is not None and test.fed == 2 and kept.last == 7
    kept.read({"errors": later}, 9)
    again = kept.replay(trigger(), "error_rate")
    assert again is test and test.fed == 3 and kept.last == 9
    whole = replayed("error_rate", trigger(), first + later).verdict
    assert test.verdict is not None and whole is not None and test.verdict.to_json() == whole.to_json()
    # Nothing new stored: the same test, fed nothing.
    kept.read({}, 9)
    assert kept.replay(trigger(), "error_rate") is test and test.fed == 3
    # The other trigger's increments wait until it is asked for.
    assert kept.pending == {"other": [Increment(1, 1, 0, 0)]}


def test_a_test_built_for_other_settings_is_not_handed_out() -> None:
    kept = ReleaseReplays()
    kept.read({"errors": [Increment(100, 900, 1, 9)]}, 1)
    assert kept.replay(trigger(alpha=0.01), "error_rate") is not None
    assert kept.replay(trigger(alpha=0.05), "error_rate") is None
    assert kept.replay(trigger(alpha=0.01), "ratio") is None


def test_a_stored_increment_the_test_refuses_leaves_it_broken() -> None:
    kept = ReleaseReplays()
    kept.read({"errors": [Increment(100, 900, 1, 9), Increment(-500, 900, 0, 9), Increment(100, 900, 1, 9)]}, 3)
    test = kept.replay(trigger(), "error_rate")
    assert test is not None and test.broken is not None and "canary_requests" in test.broken
    assert kept.pending == {}
