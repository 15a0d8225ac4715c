"""When the controller anchors the audit chain: at most every anchor_every, only when the head moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shiprail.domain.anchoring import Mark, anchor_due, next_look

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVERY = 15 * 60
H1, H2 = "a1" * 32, "b2" * 32


def due(now: datetime, head: tuple[int, str], last: Mark | None, **kw: object) -> bool:
    return anchor_due(now, head=head, last=last, every_s=EVERY, **kw)  # type: ignore[arg-type]


def test_the_first_anchor_is_due_at_once_but_not_for_an_empty_chain() -> None:
    assert due(T0, (1, H1), None) is True
    assert due(T0, (0, "0" * 64), None) is False


def test_an_anchor_is_due_once_the_interval_passed_and_the_head_moved() -> None:
    last = Mark(5, H1, T0)
    assert due(T0 + timedelta(seconds=EVERY - 1), (6, H2), last) is False
    assert due(T0 + timedelta(seconds=EVERY), (6, H2), last) is True
    # The head did not move: never, however long it has been.
    assert due(T0 + timedelta(days=30), (5, H1), last) is False


def test_after_a_failure_the_next_try_waits_for_the_retry_delay() -> None:
    failed = T0 + timedelta(hours=1)
    kw = {"failed_at": failed, "retry_s": 60.0}
    assert due(failed + timedelta(seconds=59), (6, H2), Mark(5, H1, T0), **kw) is False
    assert due(failed + timedelta(seconds=60), (6, H2), Mark(5, H1, T0), **kw) is True
    assert due(failed + timedelta(seconds=60), (6, H2), None, **kw) is True


def test_next_look_is_when_the_interval_ends() -> None:
    assert next_look(T0, last=None, every_s=EVERY) == T0
    assert next_look(T0, last=Mark(5, H1, T0 - timedelta(minutes=5)), every_s=EVERY) == T0 + timedelta(minutes=10)
    assert next_look(T0, last=Mark(5, H1, T0 - timedelta(hours=5)), every_s=EVERY) == T0


def test_an_anchor_dated_after_now_holds_nothing_back() -> None:
    """Its time says nothing of when anchoring last ran (a clock set ahead, a forged line)."""
    ahead = Mark(5, H1, T0 + timedelta(days=1))
    assert due(T0, (6, H2), ahead) is True
    assert due(T0, (5, H1), ahead) is False  # the head did not move
    assert next_look(T0, last=ahead, every_s=EVERY) == T0
