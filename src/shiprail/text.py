"""Small rules about text shared by the parsers."""

from __future__ import annotations

import math
import re
import signal
from urllib.parse import urlsplit


def is_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits: what ``int()`` reads as a plain number.

    ``str.isdigit()`` alone is also true of "²" and other digit-like characters that ``int()``
    refuses, so a check by ``isdigit()`` followed by ``int()`` turned such input into a traceback.
    """
    return text.isascii() and text.isdigit()


def ascii_float(text: str) -> float:
    """``float(text)`` for a number written in ASCII; ``ValueError`` for any other text.

    ``float()`` also reads other scripts' digits (Arabic-Indic, fullwidth), which YAML, JSON,
    pydantic and Prometheus read as no number at all: a plan's weight written in them passed as a
    number while a duration or a step's key written alike was refused.
    """
    if not text.isascii():
        raise ValueError(f"{text!r} is not written in ASCII digits")
    return float(text)


# How infinity may be spelled as text; any other text that reads as infinite overflowed a float.
_INFINITY_SPELLINGS = frozenset({"inf", "infinity"})


def overflowed(text: str, number: float) -> bool:
    """True when ``number``, read from ``text``, is infinite only because the number written is too
    large for a float (``1e400``), not because ``text`` spells infinity (``inf``)."""
    # YAML spells it .inf, -.Inf.
    return math.isinf(number) and text.strip().lstrip("+-").removeprefix(".").lower() not in _INFINITY_SPELLINGS


def underflowed(text: str, number: float) -> bool:
    """True when ``number``, read from ``text``, is 0 only because the number written is too small
    for a float (``1e-400``): ``text`` writes a digit other than 0 before its exponent."""
    if number != 0:
        return False
    mantissa = re.split("[eE]", text.strip().lstrip("+-"), maxsplit=1)[0]
    return any(c in "123456789" for c in mantissa)


def digits_hint(text: object) -> str:
    """``"; write it in ASCII digits (0-9)"`` when ``text`` holds a digit of another script, else ``""``.

    Added to a refusal of such a number, which would otherwise read as a refusal of a number.
    """
    if isinstance(text, str) and any(not c.isascii() and c.isnumeric() for c in text):
        return "; write it in ASCII digits (0-9)"
    return ""


_PERCENT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*%\s*")


def percent_hint(text: object) -> str:
    """How to write a number given with a percent sign (``"1%"``) in a file, else ``""``.

    Files write weights in percent (``10``) and error rates as fractions (``0.01``): the same ``1%``
    is ``1`` in one field and ``0.01`` in the other.
    """
    if isinstance(text, str) and _PERCENT.fullmatch(text):
        return "; write it without the %: a weight in percent (1 for 1%), an error rate as a fraction (0.01 for 1%)"
    return ""


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 70`` for a number the platform has no name for."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def shell_status(code: int) -> str:
    """``139 (a command it ran was killed by SIGSEGV)``: a shell's exit status, read as a shell writes it.

    A shell whose command is killed by signal N exits with 128 + N, so a crash inside a test
    script or a router command otherwise shows as a bare ``exited with 139``.
    """
    number = code - 128
    if 0 < number < 65:
        try:
            return f"{code} (a command it ran was killed by {signal.Signals(number).name})"
        except ValueError:
            pass
    return str(code)


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an http:// or https:// URL naming a host."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:  # an unbalanced [ in the host
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
