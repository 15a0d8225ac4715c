"""The metric provider interface: a metric for one version over a window."""

from __future__ import annotations

from typing import Protocol

from shiprail.domain.contract import Sample
from shiprail.schema.service import Metric


class Provider(Protocol):
    """Answers metric queries. Never raises for expected outcomes: no data is ``Sample(None)``,
    a failed query is ``Sample.failed(reason)`` (both judged inconclusive, never pass)."""

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        """The value of ``metric`` (named ``name`` in the service file) for ``version``."""
        ...
