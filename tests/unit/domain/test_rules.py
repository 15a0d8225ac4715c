"""``written_length``: how much of an override reason or a post-mortem summary can be read."""

from __future__ import annotations

import pytest

from shiprail.domain.rules import written_length


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
