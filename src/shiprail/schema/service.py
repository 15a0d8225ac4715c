"""``services/<name>.yaml``: something deployable, how its traffic splits and how it is measured."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shiprail.providers import ProviderConfig
from shiprail.routers import RouterConfig
from shiprail.schema.base import StrictModel
from shiprail.schema.plan import Rollout, Stage, Verify

MetricKind = Literal["error_rate", "latency", "rate", "count", "ratio", "gauge"]
# Kinds whose values are fractions in [0, 1]: a threshold outside that range never or always fires.
FRACTION_KINDS: frozenset[str] = frozenset({"error_rate", "ratio"})


class Metric(StrictModel):
    """One measurable thing, queried per version over a window."""

    kind: MetricKind
    query: str | None = None
    unit: str | None = None
    description: str | None = None


class ServiceDefaults(StrictModel):
    """What every release of this service gets unless its plan says more."""

    rollout: Rollout | None = None
    stage: Stage | None = None
    verify: Verify | None = None


class Service(StrictModel):
    """The whole of a service file."""

    name: str
    description: str | None = None
    router: RouterConfig
    provider: ProviderConfig
    metrics: dict[str, Metric] = Field(default_factory=dict)
    defaults: ServiceDefaults = Field(default_factory=ServiceDefaults)
