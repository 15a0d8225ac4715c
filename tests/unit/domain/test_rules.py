"""Who may override: how much of a reason can be read (``written_length``), and what the person saw (``check_seen``)."""

from __future__ import annotations

import pytest

from shiprail.domain.engine import ReleaseState
from shiprail.domain.rules import check_seen, written_length
from shiprail.domain.states import Status
from shiprail.errors import OverrideRefused


@pytest.mark.parametrize(
    "blank",
    [
        "\u3164",  # HANGUL FILLER (a letter to Unicode, drawn as nothing)
        "\u115f",  # HANGUL CHOSEONG FILLER
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\u2800",  # BRAILLE PATTERN BLANK
        "\u034f",  # COMBINING GRAPHEME JOINER
        "\ufe0f",  # VARIATION SELECTOR-16
    ],
)
def test_characters_drawn_as_nothing_are_not_counted(blank: str) -> None:
    # Twenty of them passed a 15-character override reason: not Cf or Cc, yet nobody can read them.
    assert written_length(blank * 20) == 0
    assert written_length(f"rollback{blank * 20} ok") == len("rollback ok")


def test_written_text_is_counted_whole() -> None:
    assert written_length("  Carol is out sick\u200b ") == len("Carol is out sick")
    assert written_length("परीक्षण पूरा") == len("परीक्षण पूरा")  # combining vowel signs are text
    assert written_length("한글 이유") == len("한글 이유")


def test_an_override_of_the_state_the_person_saw_goes_on() -> None:
    check_seen("r-1", ReleaseState(Status.ROLLING_OUT, step=1), ReleaseState(Status.ROLLING_OUT, step=1), "")


def test_an_override_of_a_state_the_release_left_says_what_changed_and_to_look_again() -> None:
    with pytest.raises(OverrideRefused) as refused:
        check_seen(
            "r-1",
            ReleaseState(Status.ROLLING_OUT, step=0),
            ReleaseState(Status.ROLLING_OUT, step=1),
            "shiprail:controller promoted it at 2026-01-01 00:40:00 UTC",
        )
    assert str(refused.value) == (
        "release r-1 is rolling_out (step 2) now, not rolling_out (step 1) as when you looked: shiprail:controller "
        "promoted it at 2026-01-01 00:40:00 UTC; nothing was overridden. Look again (`shiprail release show r-1`) "
        "and override what fails there"
    )
