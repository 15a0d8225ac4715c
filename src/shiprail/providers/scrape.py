"""The ``scrape`` provider: each version's own Prometheus text endpoint, read directly.

For services without a Prometheus server. Every read (a *scrape*) of a version's endpoint is
parsed with prometheus_client's parser and kept in memory with the time it was taken (from the
injected ``Clock``, never the system clock). A query scrapes the version (unless it was scraped
less than ``min_interval_s`` ago) and computes over the snapshots inside the window:

- ``error_rate`` / ``ratio``: Δfailures / Δtotal (``errors`` + ``error_labels`` over ``counter``),
  count = Δtotal; no requests in the window → no data (with count 0);
- ``rate``: Δcounter / Δt, count = Δcounter; ``count``: Δcounter;
- ``latency``: the ``quantile`` of the histogram's bucket increases, interpolated linearly inside
  the bucket as Prometheus's ``histogram_quantile`` does; count = observations;
- ``gauge``: the gauge's latest value (summed over the matching series).

Increases are summed scrape to scrape, so a counter that goes down (the process restarted) counts
its new value as the increase, and a series that appears between two scrapes started from 0.
Rates need two scrapes in the window: the first scrape is no data.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shiprail.clock import Clock
from shiprail.domain.contract import Sample
from shiprail.providers import ScrapeProviderConfig
from shiprail.providers.common import bucket_quantile, finite, one_line, render
from shiprail.providers.http import auth_headers, fetch_text, http_problem, shown_url
from shiprail.schema.service import Metric

SeriesKey = tuple[str, frozenset[tuple[str, str]]]
Fetch = Callable[[str], str]

# How much older than a window a read may be and still count as inside it. The reads are the
# analyses' own (one per analysis interval), and an analysis due every W seconds starts a little
# after it is due: with a window of W the previous read is then W and a few milliseconds old, and
# a strict edge left every analysis one read, no data, for ever. Windows are whole seconds; as
# the controller rounds a regression window up to the next second, a read counts while it is less
# than a second past the window's start.
WINDOW_SLACK_S = 1.0


@dataclass(frozen=True)
class Snapshot:
    """One scrape of one version: when, every sample it exposed, and the sample names its ``# TYPE`` lines declare."""

    at: datetime
    samples: Mapping[SeriesKey, float]
    declared: frozenset[str] = frozenset()


_TYPE_LINE = re.compile(r"^#[ \t]+TYPE[ \t]+(\S+)[ \t]+(\S+)", re.MULTILINE)
# The samples a metric family of each type exposes, by suffix of the family's name. A counter's
# TYPE line names its sample in the Prometheus text format (`# TYPE http_requests_total counter`)
# and its family in OpenMetrics (`# TYPE http_requests counter`, sample `http_requests_total`).
_SUFFIXES = {
    "counter": ("", "_total"),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


def declared_names(text: str) -> frozenset[str]:
    """The sample names the ``# TYPE`` lines of an exposition declare, series or not.

    A labelled counter or histogram has no series until its first use (prometheus_client exposes
    only its HELP and TYPE lines): declared and empty is a count of zero, not a misspelt name.
    """
    return frozenset(name + suffix for name, kind in _TYPE_LINE.findall(text) for suffix in _SUFFIXES.get(kind, ("",)))


def parse_text(text: str) -> dict[SeriesKey, float]:
    """Every sample of a Prometheus text exposition, keyed by (sample name, labels)."""
    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out


class Matcher:
    """Anchored regular-expression label matchers, as PromQL's ``=~`` (a missing label is "")."""

    def __init__(self, labels: Mapping[str, str], version: str) -> None:
        self._res = {key: re.compile(render(value, {"version": re.escape(version)})) for key, value in labels.items()}

    def __call__(self, labels: frozenset[tuple[str, str]]) -> bool:
        have = dict(labels)
        return all(rx.fullmatch(have.get(key, "")) for key, rx in self._res.items())


def increases(snapshots: list[Snapshot], name: str, match: Matcher) -> dict[frozenset[tuple[str, str]], float]:
    """Per matching series of ``name``: its increase across ``snapshots``, counter resets handled."""
    total: dict[frozenset[tuple[str, str]], float] = {}
    for before, after in itertools.pairwise(snapshots):
        for (sample_name, labels), value in after.samples.items():
            if sample_name != name or not match(labels):
                continue
            prev = before.samples.get((sample_name, labels), 0.0)
            # A drop means the counter restarted from zero: all of its new value is new.
            total[labels] = total.get(labels, 0.0) + (value - prev if value >= prev else value)
    return total


def _le(labels: frozenset[tuple[str, str]]) -> float | None:
    raw = dict(labels).get("le")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


class ScrapeStatus(Exception):
    """An endpoint answered an HTTP error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class NoCredentials(Exception):
    """The credentials the config names cannot be sent (``http.auth_headers`` says why)."""


class ScrapeProvider:
    """Reads the stable and canary versions' metrics endpoints and computes metrics from the reads.

    ``stable`` and ``canary`` name the release's two versions, so a query for a version knows
    which endpoint to read (``config.stable_url`` or ``config.canary_url``).
    """

    def __init__(
        self,
        config: ScrapeProviderConfig,
        clock: Clock,
        *,
        stable: str,
        canary: str,
        min_interval_s: float = 1.0,
        retention_s: float = 24 * 3600,
        fetch: Fetch | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        if stable == canary:
            raise ValueError(f"the stable and canary versions are both {stable!r}")
        self.config = config
        self.clock = clock
        self.env = env
        self.urls = {stable: config.stable_url, canary: config.canary_url}
        self.roles = {stable: "stable", canary: "canary"}
        self.min_interval_s = min_interval_s
        self.retention_s = retention_s
        self._client: httpx.Client | None = None
        self._fetch = fetch or self._http_fetch
        self.history: dict[str, list[Snapshot]] = {stable: [], canary: []}
        # The longest window asked for so far: older snapshots are never read again, and each one
        # holds every sample of the endpoint (gigabytes over a day of a large endpoint).
        self._longest_s: float | None = None

    @classmethod
    def from_config(cls, config: ScrapeProviderConfig, clock: Clock, *, stable: str, canary: str) -> ScrapeProvider:
        return cls(config, clock, stable=stable, canary=canary)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def call_timeout_s(self) -> float:
        """The longest one ``query`` may take: one read of the version's endpoint, timed out."""
        return float(self.config.timeout)

    def _http_fetch(self, url: str) -> str:
        if self._client is None:
            self._client = httpx.Client(timeout=float(self.config.timeout))
        headers = auth_headers(self.config, self.env, "the scrape provider's credentials")
        if isinstance(headers, str):
            raise NoCredentials(headers)
        status, text = fetch_text(self._client, url, timeout_s=float(self.config.timeout), headers=headers)
        if status >= 400:
            raise ScrapeStatus(status)
        return text

    def scrape(self, version: str) -> str | None:
        """Read ``version``'s endpoint now and remember it; None, or why the read failed."""
        url = self.urls.get(version)
        if url is None:
            known = " and ".join(f"{role} {v!r}" for v, role in self.roles.items())
            return f"version {version!r} is not one of this release's versions ({known})"
        where = f"the {self.roles[version]} metrics endpoint {shown_url(url)}"
        try:
            text = self._fetch(url)
        except NoCredentials as exc:
            return str(exc)
        except ScrapeStatus as exc:
            return f"{where} answered HTTP {exc.status}"
        except httpx.HTTPStatusError as exc:
            return f"{where} answered HTTP {exc.response.status_code}"
        except httpx.HTTPError as exc:
            return http_problem(exc, where, float(self.config.timeout))
        try:
            samples = parse_text(text)
        except (ValueError, IndexError, KeyError) as exc:
            return f"{where} is not Prometheus text format: {one_line(str(exc), 120)}"
        now = self.clock.now()
        history = self.history[version]
        keep_s = self.retention_s if self._longest_s is None else min(self.retention_s, self._longest_s)
        # The previous read is kept however old: the next query's window may reach back to it.
        while len(history) > 1 and (now - history[1].at).total_seconds() > keep_s:
            history.pop(0)
        if history and (now - history[0].at).total_seconds() > self.retention_s:
            history.pop(0)
        history.append(Snapshot(now, samples, declared_names(text)))
        return None

    def scrape_all(self) -> dict[str, str | None]:
        """Scrape every version (a controller may call this each interval to fill the history)."""
        return {version: self.scrape(version) for version in self.urls}

    def read_now(self) -> None:
        """Read both versions now: the controller's mark where a window begins (a new weight).

        A failed read is not reported here: the analysis that needs it reads again and says why.
        """
        self.scrape_all()

    def _fresh(self, version: str) -> str | None:
        history = self.history.get(version)
        if history:
            age = (self.clock.now() - history[-1].at).total_seconds()
            if age < self.min_interval_s:
                return None
        return self.scrape(version)

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        self._longest_s = max(self._longest_s or 0.0, float(window_s))
        problem = self._fresh(version)
        if problem:
            return Sample.failed(problem)
        now = self.clock.now()
        window = [s for s in self.history[version] if (now - s.at).total_seconds() < window_s + WINDOW_SLACK_S]
        try:
            return compute(name, metric, version, window)
        except re.error as exc:
            return Sample.failed(f"metric {name!r}: a label matcher is not a regular expression ({exc})")
        except ValueError as exc:
            return Sample.failed(f"metric {name!r}: {exc}")


def kind_uses(metric: Metric, field: str) -> bool:
    """Whether ``metric``'s kind reads the sample named ``field``."""
    if metric.kind == "gauge":
        return field == metric.gauge
    if metric.kind in ("error_rate", "ratio"):
        return field in (metric.counter, metric.errors)
    if metric.kind in ("rate", "count"):
        return field == metric.counter
    return False


_NEEDS: dict[str, tuple[str, ...]] = {
    "error_rate": ("counter",),
    "ratio": ("counter",),
    "rate": ("counter",),
    "count": ("counter",),
    "latency": ("histogram", "quantile"),
    "gauge": ("gauge",),
}


def check_metric(metric: Metric) -> str | None:
    """Why the scrape provider cannot compute ``metric``, or None when it can."""
    for field in _NEEDS.get(metric.kind, ()):
        if getattr(metric, field) in (None, ""):
            hint = " (0.99 for p99)" if field == "quantile" else ""
            return f"the scrape provider needs `{field}`{hint} for a metric of kind {metric.kind}"
    if (
        metric.kind in ("error_rate", "ratio")
        and metric.errors in (None, "", metric.counter)
        and not metric.error_labels
    ):
        # The failures default to the counter itself: with no labels to pick them out, every
        # request would count as one, and every version would read 100 %.
        return (
            f"the scrape provider needs `errors` (a counter of failures) or `error_labels` (e.g. "
            f'{{code: "5.."}}) for a metric of kind {metric.kind}: as written, every request of '
            f"`{metric.counter}` counts as a failure"
        )
    return None


def _need(value: str | None) -> str:
    assert value  # checked by check_metric
    return value


def _exposed(window: list[Snapshot], *names: str) -> None:
    """Raise when the latest scrape exposes none of ``names`` at all (a misspelt name, not no data).

    A name its ``# TYPE`` lines declare is exposed, even without a series yet.
    """
    if not window:
        return
    present = {n for n, _ in window[-1].samples} | window[-1].declared
    if not present.intersection(names):
        raise ValueError(f"the endpoint exposes no {names[0]} samples")


def compute(name: str, metric: Metric, version: str, window: list[Snapshot]) -> Sample:
    """The metric over the snapshots of one window (oldest first)."""
    problem = check_metric(metric)
    if problem:
        raise ValueError(problem)
    match = Matcher(metric.labels, version)
    for field in (metric.counter, metric.errors, metric.gauge):
        if field and kind_uses(metric, field):
            _exposed(window, field)
    if metric.histogram and metric.kind == "latency":
        _exposed(window, f"{metric.histogram}_bucket")
    kind = metric.kind
    if kind == "gauge":
        gauge = _need(metric.gauge)
        if not window:
            return Sample(None)
        values = [v for (n, labels), v in window[-1].samples.items() if n == gauge and match(labels)]
        return Sample(finite(math.fsum(values)) if values else None)
    if len(window) < 2:
        return Sample(None)  # rates need two scrapes inside the window
    span = (window[-1].at - window[0].at).total_seconds()
    if kind in ("error_rate", "ratio"):
        counter = _need(metric.counter)
        total = math.fsum(increases(window, counter, match).values())
        bad_match = Matcher({**metric.labels, **metric.error_labels}, version)
        bad = math.fsum(increases(window, metric.errors or counter, bad_match).values())
        if not math.isfinite(total + bad):
            return Sample(None)  # a NaN or ±Inf counter: nothing to measure
        if total <= 0:
            return Sample(None, 0.0)
        return Sample(bad / total, total)
    if kind in ("rate", "count"):
        counter = _need(metric.counter)
        grown = math.fsum(increases(window, counter, match).values())
        if not math.isfinite(grown):
            return Sample(None)  # a NaN or ±Inf counter: nothing to measure
        if kind == "count":
            return Sample(grown, grown)
        if span <= 0:
            return Sample(None)
        return Sample(grown / span, grown)
    if kind == "latency":
        histogram = _need(metric.histogram)
        assert metric.quantile is not None
        by_le: dict[float, float] = {}
        for labels, grown in increases(window, f"{histogram}_bucket", match).items():
            le = _le(labels)
            if le is not None:
                by_le[le] = by_le.get(le, 0.0) + grown
        if not all(math.isfinite(v) for v in by_le.values()):
            return Sample(None)  # a NaN or ±Inf bucket: nothing to measure
        observations = by_le.get(math.inf, 0.0)
        value = bucket_quantile(metric.quantile, list(by_le.items()))
        return Sample(value, observations, buckets=tuple(sorted(by_le.items())))
    raise ValueError(f"the scrape provider cannot compute a {kind} metric")
