"""The example plan ``shiprail init`` writes, as tests that bring their own regression trigger need it."""

from __future__ import annotations

# The example plan's regression triggers (releases/checkout-2.4.0.yaml, lines 32-40).
EXAMPLE_REGRESSION_TRIGGERS = """\
    # Canary against baseline: the sequential judge (docs/judges.md) tests the canary's error rate
    # and latency against the baseline's at every analysis, on everything since the rollout began
    # (so no window). alpha 0.01: each rolls a healthy canary back by chance at most 1% of the time.
    - name: error-regression
      metric: error_rate
      regression: {alpha: 0.01}
    - name: latency-regression
      metric: latency_p99
      regression: {alpha: 0.01}
"""


def without_regression_triggers(text: str) -> str:
    """The example plan ``text`` with its thresholds only, for a test that adds a regression trigger of its own."""
    assert text.count(EXAMPLE_REGRESSION_TRIGGERS) == 1, "the example plan's regression triggers have changed"
    return text.replace(EXAMPLE_REGRESSION_TRIGGERS, "")
