"""Small rules about text shared by the parsers."""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits: what ``int()`` reads as a plain number.

    ``str.isdigit()`` alone is also true of "²" and other digit-like characters that ``int()``
    refuses, so a check by ``isdigit()`` followed by ``int()`` turned such input into a traceback.
    """
    return text.isascii() and text.isdigit()
