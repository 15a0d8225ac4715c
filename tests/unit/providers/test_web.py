"""The web provider: URL templates, dotted paths, no data versus failure, without a network."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import WebProviderConfig, build_provider
from shiprail.providers.common import dotted_path_problem
from shiprail.providers.web import WebProvider, number_at, render_url
from shiprail.schema.service import Metric

CONFIG = WebProviderConfig(type="web", url="http://stats.test/v/{{version}}?window={{window}}", timeout=2)
DOC = {
    "service": "checkout",
    "errors": {"rate": 0.0125, "requests": 812, "as_text": "0.5", "flag": True, "nothing": None},
    "latency": [{"p99": 0.42}, {"p99": "NaN"}],
}


def test_render_url_encodes_the_version_and_fills_the_window() -> None:
    assert render_url(CONFIG.url, "2.4.0+build/7", 300) == "http://stats.test/v/2.4.0%2Bbuild%2F7?window=300s"
    assert render_url("http://x/{{window_seconds}}", "1", 90) == "http://x/90"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("errors.rate", (0.0125, None)),
        ("errors.requests", (812.0, None)),
        ("errors.as_text", (0.5, None)),
        ("latency.0.p99", (0.42, None)),
        ("latency.-1.p99", (None, None)),  # "NaN" is no data
        ("latency.5.p99", (None, None)),
        ("errors.missing", (None, None)),
        ("errors.nothing", (None, None)),
        ("service.rate", (None, None)),
        ("latency.².p99", (None, None)),  # "²" is no index (it was int()'s ValueError, a traceback)
    ],
)
def test_number_at(path: str, expected: tuple[float | None, str | None]) -> None:
    assert number_at(DOC, path) == expected


@pytest.mark.parametrize("text", ['{"v": NaN}', '{"v": Infinity}', '{"v": -Infinity}', '{"v": "-Infinity"}'])
def test_nan_and_infinity_are_no_data_as_json_numbers_or_strings(text: str) -> None:
    # Python's json reads the NaN and Infinity literals some JSON encoders write.
    assert number_at(json.loads(text), "v") == (None, None)


@pytest.mark.parametrize("path", ["service", "errors.flag", "errors", "latency"])
def test_number_at_a_non_number_is_a_problem(path: str) -> None:
    value, problem = number_at(DOC, path)
    assert value is None
    assert problem is not None and problem.startswith(f"the value at {path!r} is not a number")


def _provider(status: int = 200, body: Any = DOC, text: str | None = None) -> tuple[WebProvider, list[str]]:
    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if text is not None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body)

    return WebProvider(CONFIG, client=httpx.Client(transport=httpx.MockTransport(respond))), seen


def test_query_reads_the_value_and_the_count() -> None:
    provider, seen = _provider()
    metric = Metric(kind="error_rate", path="errors.rate", count_path="errors.requests")
    assert provider.query("error_rate", metric, "2.4.0", 600) == Sample(0.0125, 812.0)
    assert seen == ["http://stats.test/v/2.4.0?window=600s"]


def test_missing_is_no_data_and_non_number_fails() -> None:
    provider, _ = _provider()
    assert provider.query("m", Metric(kind="gauge", path="errors.gone"), "1", 60) == Sample(None)
    assert provider.query("m", Metric(kind="gauge", path="errors.flag"), "1", 60).error == (
        "metric 'm': the value at 'errors.flag' is not a number: true"
    )


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (500, "internal error", "the JSON endpoint http://stats.test/v/1 answered HTTP 500: internal error"),
        (200, "<html>", "the JSON endpoint http://stats.test/v/1 did not answer JSON: <html>"),
    ],
)
def test_http_errors_and_non_json_fail(status: int, text: str, expected: str) -> None:
    provider, _ = _provider(status, text=text)
    assert provider.query("m", Metric(kind="gauge", path="a"), "1", 60).error == expected


def test_a_metric_without_a_path_fails_without_a_request() -> None:
    provider, seen = _provider()
    error = provider.query("m", Metric(kind="gauge"), "1", 60).error
    assert error == "metric 'm' has no path; the web provider needs the dotted `path` to the value"
    assert seen == []


def test_build_provider_picks_web() -> None:
    assert isinstance(build_provider(CONFIG, clock=SimulatedClock()), WebProvider)


def test_number_at_an_integer_beyond_any_float_is_a_problem_not_an_overflow() -> None:
    assert number_at({"v": 10**400}, "v") == (None, "the value at 'v' is too large to be a metric value (401 digits)")


@pytest.mark.parametrize(
    ("path", "said", "value"),
    [
        ("$.items[-1]['p99']", "write the dotted path items.-1.p99", 2.0),
        ('{$.data["errors"].rate}', "write the dotted path data.errors.rate", 0.5),
        # A quoted key holding a dot has no dotted form: 'data.errors.rate' names data → errors → rate, 0.5,
        # not the 0.25 at the key "errors.rate" the JSONPath names.
        (
            "$.data['errors.rate']",
            "write a dotted path, a number indexing a list (data.errors.rate, items.0.p99)",
            None,
        ),
    ],
)
def test_a_jsonpath_is_given_the_dotted_path_that_means_the_same_or_none(
    path: str, said: str, value: float | None
) -> None:
    problem = dotted_path_problem(path)
    assert problem == f"{path!r} is JSONPath, which the web provider does not read; {said}"
    if value is not None:  # the path suggested reaches the value the JSONPath names
        doc = {"items": [{"p99": 1.0}, {"p99": 2.0}], "data": {"errors": {"rate": 0.5}, "errors.rate": 0.25}}
        assert number_at(doc, said.rsplit(" ", 1)[1]) == (value, None)
