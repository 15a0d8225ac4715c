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

    A provider that keeps its own reads (``scrape``) also has ``read_now()``: the controller calls
    it when the router confirms a new canary weight, where the next analysis's window begins.
    Without a read there, that window would hold one read, no data, at every new weight.
    """

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        """The value of ``metric`` (named ``name`` in the service file) for ``version``."""
        ...
