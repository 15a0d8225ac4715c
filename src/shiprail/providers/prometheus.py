"""The ``prometheus`` provider: PromQL templates run against a Prometheus server's HTTP API.

A metric's ``query`` (and optional ``count_query``) are templates: ``{{version}}`` is replaced by
the version (with ``\\`` and ``"`` escaped, so it is safe inside a PromQL string, and as a regular
expression matching exactly it inside an ``=~``/``!~`` matcher) and
``{{window}}`` by the window as a Prometheus duration (``300s``). The query runs as an instant
query (``GET /api/v1/query``) and must return one number:

- a scalar, or a vector with exactly one series → that value;
- an empty vector, NaN or ±Inf → no data (``Sample(None)``);
- more than one series, a range vector or a string → a failed sample asking to aggregate;
- an HTTP or connection error, or a Prometheus error (``errorType``/``error``) → a failed sample
  carrying Prometheus's own message;
- an answer with ``warnings`` (Prometheus computed it from part of the data) → a failed sample
  carrying the warnings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shiprail.clock import Clock
from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig
from shiprail.providers.common import PLACEHOLDER, finite, load_json, one_line, prom_duration, render
from shiprail.providers.http import auth_headers, fetch_text, http_problem, shown_url
from shiprail.schema.service import Metric


def promql_string(text: str) -> str:
    """``text`` escaped for use inside a double-quoted PromQL string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


# What RE2 (Prometheus' regular expressions) reads as syntax rather than as the character itself.
_REGEX_SYNTAX = frozenset("\\.+*?()|[]{}^$")


def regex_literal(text: str) -> str:
    """``text`` as a regular expression matching exactly it: ``1.0.0+b`` → ``1\\.0\\.0\\+b``."""
    return "".join(f"\\{ch}" if ch in _REGEX_SYNTAX else ch for ch in text)


def string_at(template: str, pos: int) -> tuple[str, bool] | None:
    """The PromQL string ``pos`` of ``template`` is inside: its quote (``"``, ``'`` or a backtick)
    and whether it is a regular-expression matcher's (``=~`` or ``!~`` before it); None outside one."""
    quote: str | None = None
    regex = False
    i = 0
    while i < pos:
        ch = template[i]
        if quote is not None:
            if ch == "\\" and quote != "`":
                i += 2  # an escaped character, even a quote
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
            regex = template[:i].rstrip().endswith(("=~", "!~"))
        elif ch == "#":
            # A comment runs to the end of its line: its quotes ("the canary's") open no string.
            end = template.find("\n", i)
            i = pos if end == -1 else end
            continue
        i += 1
    return None if quote is None else (quote, regex)


def render_query(template: str, version: str, window_s: int) -> str:
    """The PromQL of ``template`` for ``version`` over ``window_s`` seconds.

    ``{{version}}`` is escaped for the string it stands in: inside a regular-expression matcher
    (``version=~"{{version}}"``) it becomes a regular expression matching the version exactly, so
    ``1.0.0+b`` matches itself (as written it would match nothing) and ``.`` no other character;
    in a raw (backtick) string nothing is escaped for PromQL, which reads no escapes there.
    """
    values = {"version": promql_string(version), "window": prom_duration(window_s)}
    out: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(template):
        where = string_at(template, match.start()) if match.group(1) == "version" else None
        if where is None:
            continue
        quote, regex = where
        literal = regex_literal(version) if regex else version
        out += [render(template[last : match.start()], values), literal if quote == "`" else promql_string(literal)]
        last = match.end()
    out.append(render(template[last:], values))
    return "".join(out)


@dataclass(frozen=True)
class Result:
    """What one instant query came to: a number, no data, or why it failed."""

    value: float | None = None
    error: str | None = None


def _number(raw: Any) -> float | None:
    """A Prometheus sample value (``[ts, "1.5"]``) as a float; NaN and ±Inf are no data."""
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ValueError(f"unexpected sample {one_line(json.dumps(raw), 80)}")
    return finite(float(raw[1]))


def partial(doc: dict[str, Any]) -> str | None:
    """Why a successful answer is only part of one, or None: the ``warnings`` Prometheus sent with it.

    Prometheus answers ``success`` with ``warnings`` when part of the data could not be read (a
    remote-read store that is down, a Thanos store out of reach) and computes from the rest: the
    canary's failures may be in the part it could not read. Info-level annotations (``PromQL
    info: …``, "may or may not be false positives") are no warning, wherever a version puts them.
    """
    warnings = doc.get("warnings")
    if not isinstance(warnings, list):
        warnings = [] if warnings is None else [warnings]
    said = [str(w) for w in warnings if not str(w).startswith("PromQL info:")]
    if not said:
        return None
    return f"Prometheus answered in part (warnings: {one_line('; '.join(said))})"


def parse_response(status_code: int, body: str) -> Result:
    """Interpret one ``/api/v1/query`` answer (status code and body)."""
    try:
        doc = load_json(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if status_code >= 400:
            return Result(error=f"HTTP {status_code}: {one_line(body, 160) or 'empty body'}")
        return Result(error=f"the answer is not Prometheus API JSON: {one_line(body, 120) or 'empty body'}")
    if doc.get("status") != "success":
        kind = doc.get("errorType") or "error"
        message = doc.get("error") or f"HTTP {status_code} without an error message"
        return Result(error=f"{kind}: {one_line(str(message))}")
    if status_code >= 400:
        return Result(error=f"HTTP {status_code} with status success")
    warned = partial(doc)
    if warned:
        return Result(error=warned)
    data = doc.get("data")
    if not isinstance(data, dict):
        return Result(error="the answer has no data section")
    kind = data.get("resultType")
    result = data.get("result")
    try:
        if kind == "scalar":
            return Result(value=_number(result))
        if kind == "vector":
            if not isinstance(result, list):
                return Result(error="the vector result is not a list")
            if not result:
                return Result()
            if len(result) > 1:
                return Result(error=f"query returned {len(result)} series; aggregate it to one (e.g. with sum)")
            series = result[0]
            if not isinstance(series, dict) or "value" not in series:
                return Result(error="the vector's series has no value")
            return Result(value=_number(series["value"]))
    except ValueError as exc:
        return Result(error=f"unreadable value: {exc}")
    if kind == "matrix":
        return Result(error="query returned a range vector; make it an instant query (e.g. wrap it in rate())")
    if kind == "string":
        return Result(error="query returned a string, not a number")
    return Result(error=f"unknown result type {kind!r}")


def parse_buckets(status_code: int, body: str) -> tuple[tuple[tuple[float, float], ...] | None, str | None]:
    """Interpret a ``buckets_query`` answer: one series per ``le``, as cumulative (bound, count) pairs.

    An empty vector is no data (None, None); anything else unusable is (None, why).
    """
    try:
        doc = load_json(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        return None, parse_response(status_code, body).error or "the answer is not Prometheus API JSON"
    warned = partial(doc)
    if warned:
        return None, warned
    data = doc.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(result, list):
        return None, "buckets_query must return an instant vector with one series per le (sum by (le) (...))"
    if not result:
        return None, None
    buckets: dict[float, float] = {}
    for series in result:
        labels = series.get("metric", {}) if isinstance(series, dict) else {}
        le = labels.get("le") if isinstance(labels, dict) else None
        if le is None:
            return None, "a buckets_query series has no le label; aggregate with sum by (le) (...)"
        try:
            bound = float(le)  # "+Inf" parses as inf
            value = _number(series.get("value"))
        except (TypeError, ValueError):
            return None, f"unreadable bucket {one_line(json.dumps(series), 80)}"
        if bound in buckets:
            return None, f"two series for le={le}; aggregate with sum by (le) (...)"
        buckets[bound] = value or 0.0
    if float("inf") not in buckets:
        return None, 'buckets_query returned no le="+Inf" bucket (the total)'
    return tuple(sorted(buckets.items())), None


class PrometheusProvider:
    """Runs a metric's PromQL templates for a version over a window."""

    def __init__(
        self,
        config: PrometheusProviderConfig,
        *,
        client: httpx.Client | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.config = config
        self.env = env
        self.base_url = config.url.rstrip("/")
        self._client = client or httpx.Client(timeout=float(config.timeout))

    @classmethod
    def from_config(cls, config: PrometheusProviderConfig, clock: Clock | None = None) -> PrometheusProvider:
        """Build from the service file's ``provider:``; Prometheus keeps time itself, so no clock."""
        return cls(config)

    def close(self) -> None:
        self._client.close()

    @property
    def call_timeout_s(self) -> float:
        """The longest one ``query`` may take: its query, ``count_query`` and ``buckets_query``, each timed out."""
        return 3 * float(self.config.timeout)

    def auth_headers(self) -> dict[str, str] | str:
        """The ``Authorization`` header the config asks for, or why it is missing (``http.auth_headers``)."""
        return auth_headers(self.config, self.env, "the Prometheus credentials")

    def _ask(self, promql: str) -> tuple[int, str] | str:
        """One ``/api/v1/query`` request: (status code, body), or why it could not be made."""
        timeout = float(self.config.timeout)
        headers = self.auth_headers()
        if isinstance(headers, str):
            return headers
        try:
            url = f"{self.base_url}/api/v1/query"
            # Prometheus' own `timeout`: it stops evaluating a query nobody waits for any more.
            # Whole seconds, as Prometheus reads a duration (`1e+06s` is refused as bad_data).
            params = {"query": promql, "timeout": prom_duration(int(self.config.timeout))}
            return fetch_text(self._client, url, params=params, timeout_s=timeout, headers=headers)
        except httpx.HTTPError as exc:
            # The url as shown: a release stored before plan validate refused a password in it
            # still runs with it, and this sentence goes into the evidence and the audit trail.
            return http_problem(exc, f"Prometheus at {shown_url(self.base_url)}", timeout)

    def instant(self, promql: str) -> Result:
        """Run one instant query."""
        answer = self._ask(promql)
        return Result(error=answer) if isinstance(answer, str) else parse_response(*answer)

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        if not metric.query:
            return Sample.failed(f"metric {name!r} has no query; the prometheus provider needs a PromQL `query`")
        try:
            promql = render_query(metric.query, version, window_s)
            count_promql = render_query(metric.count_query, version, window_s) if metric.count_query else None
        except ValueError as exc:
            return Sample.failed(f"metric {name!r}: {exc}")
        result = self.instant(promql)
        if result.error:
            return Sample.failed(f"metric {name!r}: {result.error}")
        count: float | None = None
        if count_promql is not None:
            counted = self.instant(count_promql)
            if counted.error:
                return Sample.failed(f"metric {name!r} count_query: {counted.error}")
            count = counted.value
        buckets = None
        if metric.buckets_query and metric.kind == "latency":
            try:
                bucket_promql = render_query(metric.buckets_query, version, window_s)
            except ValueError as exc:
                return Sample.failed(f"metric {name!r} buckets_query: {exc}")
            buckets, error = self.buckets(bucket_promql)
            if error:
                return Sample.failed(f"metric {name!r} buckets_query: {error}")
        return Sample(result.value, count, buckets=buckets)

    def buckets(self, promql: str) -> tuple[tuple[tuple[float, float], ...] | None, str | None]:
        """Run a ``buckets_query``: the cumulative buckets, or why not."""
        answer = self._ask(promql)
        return (None, answer) if isinstance(answer, str) else parse_buckets(*answer)
