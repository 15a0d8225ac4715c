"""Canary judges: anytime-valid sequential tests of canary against baseline.

``RateRegressionTest`` (errors or any event count per request) and ``LatencyRegressionTest``
(histogram buckets) take cumulative counts at every analysis and say ``fail`` or ``continue``;
looking after every update keeps the chance of a false rollback below ``alpha``. The maths is in
docs/judges.md.

The tests (and numpy) load on first use: every command reads ``shiprail.judges.contract``
through the store, only the controller's analyses run a test.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shiprail.judges.base import Decision, JudgeInputError, Verdict

if TYPE_CHECKING:
    from shiprail.judges.latency import LatencyRegressionTest, band
    from shiprail.judges.rates import RateRegressionTest

_LAZY = {
    "LatencyRegressionTest": "shiprail.judges.latency",
    "band": "shiprail.judges.latency",
    "RateRegressionTest": "shiprail.judges.rates",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Decision", "JudgeInputError", "LatencyRegressionTest", "RateRegressionTest", "Verdict", "band"]
