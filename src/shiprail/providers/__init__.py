"""Metric providers: where a service's metrics come from, per version and window."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shiprail.schema.base import Duration, StrictModel


class PrometheusProviderConfig(StrictModel):
    """A Prometheus server's HTTP API; metric queries are PromQL templates."""

    type: Literal["prometheus"] = Field(description="`prometheus`.")
    url: str = Field(description="The Prometheus server's base URL.")
    timeout: Duration = Field(10, description="The longest one query may take.")


class ScrapeProviderConfig(StrictModel):
    """Each version's own Prometheus text endpoint, read directly."""

    type: Literal["scrape"] = Field(description="`scrape`.")
    stable_url: str = Field(description="The stable version's metrics endpoint.")
    canary_url: str = Field(description="The canary version's metrics endpoint.")
    timeout: Duration = Field(5, description="The longest one read may take.")


class PushProviderConfig(StrictModel):
    """Apps or CI post counts to shiprail."""

    type: Literal["push"] = Field(description="`push`.")


class WebProviderConfig(StrictModel):
    """Any JSON endpoint; ``{{version}}`` in the URL, the value at a dotted path."""

    type: Literal["web"] = Field(description="`web`.")
    url: str = Field(description="The JSON endpoint; `{{version}}` is filled in.")
    timeout: Duration = Field(10, description="The longest one request may take.")


ProviderConfig = Annotated[
    PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
    Field(discriminator="type"),
]
