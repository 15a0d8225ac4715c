"""The metric provider interface: a metric for one version over a window."""

from __future__ import annotations

from typing import Protocol

from shiprail.domain.contract import Sample
from shiprail.schema.service import Metric


class Provider(Protocol):
    """Answers metric queries. Never raises for expected outcomes: no data is ``Sample(None)``,
    a failed query is ``Sample.failed(reason)`` (both judged inconclusive, never pass).

    A provider that reaches over the network also says ``call_timeout_s``, the longest one
    ``query`` may take: the controller keeps its lease on the release renewed that long while an
    analysis asks (``defaults.PROVIDER_CALL_TIMEOUT_SECONDS`` when it does not say).
    """

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        """The value of ``metric`` (named ``name`` in the service file) for ``version``."""
        ...
