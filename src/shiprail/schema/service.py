"""``services/<name>.yaml``: something deployable, how its traffic splits and how it is measured."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shiprail.providers import ProviderConfig
from shiprail.routers import RouterConfig
from shiprail.schema.base import Number, StrictModel
from shiprail.schema.plan import Rollout, Stage, Verify

# Characters a service name may not hold: it is the stem of services/<name>.yaml, never a path.
NOT_IN_SERVICE_NAMES = ("/", "\\", "\x00", "..", ":")  # ":" names a drive or a stream on Windows


def is_service_name(name: str) -> bool:
    """Whether ``name`` can only name a file in services/ (a plan's ``service``): no path, no leading dot."""
    return bool(name.strip()) and not name.startswith(".") and not any(bad in name for bad in NOT_IN_SERVICE_NAMES)


MetricKind = Literal["error_rate", "latency", "rate", "count", "ratio", "gauge"]
# Kinds whose values are fractions in [0, 1]: a threshold outside that range never or always fires.
FRACTION_KINDS: frozenset[str] = frozenset({"error_rate", "ratio"})
# Kinds the sequential judge (``regression:``) compares: rates from counts, latency from buckets.
RATE_KINDS: frozenset[str] = FRACTION_KINDS
LATENCY_KINDS: frozenset[str] = frozenset({"latency"})
REGRESSION_KINDS: frozenset[str] = RATE_KINDS | LATENCY_KINDS


class Metric(StrictModel):
    """One measurable thing, queried per version over a window."""

    kind: MetricKind = Field(description="What the value measures; error_rate and ratio are fractions between 0 and 1.")
    query: str | None = Field(
        None, description="The query the provider runs; `{{version}}` and `{{window}}` are filled in."
    )
    count_query: str | None = Field(
        None,
        description=(
            "prometheus: a PromQL template for the sample size behind the value (requests or events in the "
            "window); `{{version}}` and `{{window}}` are filled in."
        ),
    )
    buckets_query: str | None = Field(
        None,
        description=(
            "prometheus, latency: a PromQL template returning one series per `le` label, each bucket's count over the "
            'window (e.g. `sum by (le) (increase(http_request_duration_seconds_bucket{version="{{version}}"}'
            "[{{window}}]))`); the sequential judge (`regression:`) compares these buckets."
        ),
    )
    counter: str | None = Field(
        None,
        description=(
            "scrape: the counter sample to read, as exposed (e.g. `http_requests_total`); the total for "
            "error_rate and ratio, the counted thing for rate and count."
        ),
    )
    errors: str | None = Field(
        None,
        description="scrape: the counter of failures for error_rate and ratio; defaults to `counter`.",
    )
    error_labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "scrape: label matchers (anchored regular expressions) picking the failures out of `errors`, "
            'e.g. `{code: "5.."}`.'
        ),
    )
    histogram: str | None = Field(
        None,
        description=(
            "scrape and push: the histogram to read for latency, by its base name (without `_bucket`; "
            "`sdk_latency_seconds` for the SDK's pushed latencies)."
        ),
    )
    quantile: Number | None = Field(
        None,
        ge=0,
        le=1,
        description="scrape and push: the quantile a latency metric reports, between 0 and 1 (0.99 for p99).",
    )
    gauge: str | None = Field(None, description="scrape: the gauge sample to read for a gauge metric.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "scrape: label matchers (anchored regular expressions) every series read must match; "
            "`{{version}}` stands for the version."
        ),
    )
    path: str | None = Field(
        None, description="web: the dotted path to the value in the JSON answer (`data.errors.rate`, `items.0.p99`)."
    )
    count_path: str | None = Field(
        None, description="web: the dotted path to the sample size, when the answer has one."
    )
    unit: str | None = Field(None, description="The unit of the value (s, ms, req/s...).")
    description: str | None = Field(None, description="What the metric means.")


class ServiceDefaults(StrictModel):
    """What every release of this service gets unless its plan says more."""

    rollout: Rollout | None = Field(None, description="Rollout steps for plans without a `rollout` section.")
    stage: Stage | None = Field(None, description="Stage checks for plans without a `stage` section.")
    verify: Verify | None = Field(None, description="Only `probes` is used: the probes of plans that list none.")


class Service(StrictModel):
    """The whole of a service file."""

    name: str = Field(description="The service's name; must match the file name (services/<name>.yaml).")
    description: str | None = Field(None, description="What the service is.")
    router: RouterConfig = Field(description="How its traffic is split between stable and canary, chosen by `type`.")
    provider: ProviderConfig = Field(description="Where its metrics come from, chosen by `type`.")
    metrics: dict[str, Metric] = Field(
        default_factory=dict, description="The metrics rollback contracts can watch, by name; at least one."
    )
    defaults: ServiceDefaults = Field(
        default_factory=ServiceDefaults,
        description="What every release of this service gets unless its plan says otherwise.",
    )
