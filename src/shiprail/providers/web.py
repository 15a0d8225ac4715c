"""The ``web`` provider: any JSON endpoint, the value at a dotted path.

The provider's ``url`` is a template: ``{{version}}`` (URL-encoded), ``{{window}}`` (a duration
such as ``300s``) and ``{{window_seconds}}`` (``300``) are filled in. The metric's ``path`` names
the value (``data.errors.rate``; a number segment indexes a list) and the optional
``count_path`` its sample size. A missing key or a ``null`` is no data; anything that is not a
number (or a string holding one) is a failed sample, as are HTTP errors and non-JSON answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from shiprail.clock import Clock
from shiprail.domain.contract import Sample
from shiprail.providers import WebProviderConfig
from shiprail.providers.common import finite, load_json, one_line, prom_duration, render
from shiprail.providers.http import auth_headers, fetch_text, http_problem, shown_url
from shiprail.schema.service import Metric
from shiprail.text import is_digits

MISSING = object()


def render_url(template: str, version: str, window_s: int) -> str:
    """The URL of ``template`` for ``version`` over ``window_s`` seconds."""
    return render(
        template,
        {
            "version": quote(version, safe=""),
            "window": prom_duration(window_s),
            "window_seconds": str(int(window_s)),
        },
    )


def dig(doc: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``doc``, or ``MISSING``."""
    here = doc
    for part in path.split("."):
        if isinstance(here, dict):
            if part not in here:
                return MISSING
            here = here[part]
        elif isinstance(here, list) and is_digits(part.lstrip("-")):
            index = int(part)
            if not -len(here) <= index < len(here):
                return MISSING
            here = here[index]
        else:
            return MISSING
    return here


def number_at(doc: Any, path: str) -> tuple[float | None, str | None]:
    """(value, None), (None, None) for no data, or (None, why) when the value is not a number."""
    raw = dig(doc, path)
    if raw is MISSING or raw is None:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None, f"the value at {path!r} is not a number: {one_line(json.dumps(raw), 80)}"
    try:
        return finite(float(raw)), None
    except ValueError:
        return None, f"the value at {path!r} is not a number: {one_line(json.dumps(raw), 80)}"
    except OverflowError:  # a JSON integer beyond any float
        return None, f"the value at {path!r} is too large to be a metric value ({len(str(raw))} digits)"


class WebProvider:
    """Reads a metric out of a JSON document fetched per version."""

    def __init__(
        self,
        config: WebProviderConfig,
        *,
        client: httpx.Client | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.config = config
        self.env = env
        self._client = client or httpx.Client(timeout=float(config.timeout))

    @classmethod
    def from_config(cls, config: WebProviderConfig, clock: Clock | None = None) -> WebProvider:
        return cls(config)

    def close(self) -> None:
        self._client.close()

    @property
    def call_timeout_s(self) -> float:
        """The longest one ``query`` may take: one request, timed out."""
        return float(self.config.timeout)

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        if not metric.path:
            return Sample.failed(f"metric {name!r} has no path; the web provider needs the dotted `path` to the value")
        try:
            url = render_url(self.config.url, version, window_s)
        except ValueError as exc:
            return Sample.failed(f"provider url: {exc}")
        where = f"the JSON endpoint {shown_url(url)}"
        headers = auth_headers(self.config, self.env, "the web provider's credentials")
        if isinstance(headers, str):
            return Sample.failed(headers)
        try:
            status, text = fetch_text(self._client, url, timeout_s=float(self.config.timeout), headers=headers)
        except httpx.HTTPError as exc:
            return Sample.failed(http_problem(exc, where, float(self.config.timeout)))
        if status >= 400:
            return Sample.failed(f"{where} answered HTTP {status}: {one_line(text, 120)}")
        try:
            doc = load_json(text)
        except ValueError:
            return Sample.failed(f"{where} did not answer JSON: {one_line(text, 120) or 'empty body'}")
        value, problem = number_at(doc, metric.path)
        if problem:
            return Sample.failed(f"metric {name!r}: {problem}")
        count: float | None = None
        if metric.count_path:
            count, problem = number_at(doc, metric.count_path)
            if problem:
                return Sample.failed(f"metric {name!r}: {problem}")
        return Sample(value, count)
