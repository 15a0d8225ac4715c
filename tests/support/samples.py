"""What the integration tests' fake providers read for a healthy version."""

from __future__ import annotations

import math

from shiprail.domain.contract import Sample

# A p99 of 0.2 s over 1000 requests, with the histogram buckets behind it ((bound, cumulative
# count), +Inf last): the example plan's latency-regression trigger compares buckets, and without
# them it would be inconclusive at every analysis and pause the release (on_no_data: pause).
HEALTHY_LATENCY = Sample(0.2, 1000, buckets=((0.1, 900.0), (0.2, 990.0), (0.25, 1000.0), (math.inf, 1000.0)))
# 0.1 % of 1000 requests fail: the request count is what the error-regression trigger compares.
HEALTHY_ERRORS = Sample(0.001, 1000)


def healthy(name: str) -> Sample:
    """The healthy reading of the example service's metric ``name`` (error_rate or latency_p99)."""
    return HEALTHY_ERRORS if name == "error_rate" else HEALTHY_LATENCY
