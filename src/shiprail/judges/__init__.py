"""Canary judges: anytime-valid sequential tests of canary against baseline.

``RateRegressionTest`` (errors or any event count per request) and ``LatencyRegressionTest``
(histogram buckets) take cumulative counts at every analysis and say ``fail`` or ``continue``;
looking after every update keeps the chance of a false rollback below ``alpha``. The maths is in
docs/judges.md.
"""

from shiprail.judges.base import Decision, JudgeInputError, Verdict
from shiprail.judges.latency import LatencyRegressionTest, band
from shiprail.judges.rates import RateRegressionTest

__all__ = ["Decision", "JudgeInputError", "LatencyRegressionTest", "RateRegressionTest", "Verdict", "band"]
