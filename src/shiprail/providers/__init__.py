"""Metric providers: where a service's metrics come from, per version and window."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shiprail.schema.base import Duration, StrictModel


class PrometheusProviderConfig(StrictModel):
    """A Prometheus server's HTTP API; metric queries are PromQL templates."""

    type: Literal["prometheus"]
    url: str
    timeout: Duration = 10


class ScrapeProviderConfig(StrictModel):
    """Each version's own Prometheus text endpoint, read directly."""

    type: Literal["scrape"]
    stable_url: str
    canary_url: str
    timeout: Duration = 5


class PushProviderConfig(StrictModel):
    """Apps or CI post counts to shiprail."""

    type: Literal["push"]


class WebProviderConfig(StrictModel):
    """Any JSON endpoint; ``{{version}}`` in the URL, the value at a dotted path."""

    type: Literal["web"]
    url: str
    timeout: Duration = 10


ProviderConfig = Annotated[
    PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
    Field(discriminator="type"),
]
