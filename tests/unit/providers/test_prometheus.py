"""The prometheus provider: template rendering and every answer shape, without a network.

The bodies below were recorded from a real Prometheus 2.42 (``/api/v1/query``); the 503 one
follows the documented envelope with Prometheus's own timeout message.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig, build_provider
from shiprail.providers.prometheus import PrometheusProvider, Result, parse_response, render_query
from shiprail.schema.service import Metric

SCALAR = '{"status":"success","data":{"resultType":"scalar","result":[1795701296.653,"1"]}}'
SCALAR_NAN = '{"status":"success","data":{"resultType":"scalar","result":[1795701296.698,"NaN"]}}'
SCALAR_INF = '{"status":"success","data":{"resultType":"scalar","result":[1795701296.71,"+Inf"]}}'
VECTOR_ONE = (
    '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795701305.978,"0.25"]}]}}'
)
VECTOR_EMPTY = '{"status":"success","data":{"resultType":"vector","result":[]}}'
VECTOR_NAN = (
    '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795701305.978,"NaN"]}]}}'
)
VECTOR_TWO = (
    '{"status":"success","data":{"resultType":"vector","result":['
    '{"metric":{"__name__":"up","instance":"127.0.0.1:19091","job":"self"},"value":[1795701305.989,"1"]},'
    '{"metric":{"__name__":"up","instance":"127.0.0.1:19091","job":"self","x":"y"},"value":[1795701305.989,"1"]}]}}'
)
MATRIX = '{"status":"success","data":{"resultType":"matrix","result":[]}}'
STRING = '{"status":"success","data":{"resultType":"string","result":[1795701296.733,"hello"]}}'
BAD_DATA = (
    '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": 1:17: parse error: '
    'unclosed left parenthesis"}'
)
EXECUTION = (
    '{"status":"error","errorType":"execution","error":"found duplicate series for the match group {} on the '
    'right hand-side of the operation: [{__name__=\\"up\\"}];many-to-many matching not allowed: matching labels '
    'must be unique on one side"}'
)
TIMEOUT = '{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}'


def test_render_query_fills_version_and_window() -> None:
    template = 'sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[{{window}}]))'
    assert render_query(template, "2.4.0", 300) == 'sum(rate(http_requests_total{version="2.4.0",code=~"5.."}[300s]))'


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # A regular-expression matcher: the version matches itself only ("+" and "." literally).
        ('x{version=~"{{version}}"}', 'x{version=~"1\\\\.0\\\\.0\\\\+b"}'),
        ('x{version !~ "{{version}}|2.3.1"}', 'x{version !~ "1\\\\.0\\\\.0\\\\+b|2.3.1"}'),
        ("x{version=~`{{ version }}`}", "x{version=~`1\\.0\\.0\\+b`}"),  # raw: no PromQL escapes
        # An equality matcher, even after a string holding "=~" or an escaped quote: as it is.
        ('x{a="=~\\"", version="{{version}}"}', 'x{a="=~\\"", version="1.0.0+b"}'),
        ("x{version=`{{version}}`}", "x{version=`1.0.0+b`}"),
        # A comment's apostrophe or quote opens no string: the matcher after it is still a regex.
        (
            '# the canary\'s errors\nx{version=~"{{version}}"}',
            '# the canary\'s errors\nx{version=~"1\\\\.0\\\\.0\\\\+b"}',
        ),
        ('x # "\n{version=~`{{version}}`}', 'x # "\n{version=~`1\\.0\\.0\\+b`}'),
    ],
)
def test_the_version_is_escaped_as_a_regular_expression_inside_a_regex_matcher(template: str, expected: str) -> None:
    assert render_query(template, "1.0.0+b", 60) == expected


def test_render_query_tolerates_spaces_and_escapes_quotes() -> None:
    assert render_query('x{v="{{ version }}"}[{{window}}]', 'a"b\\c', 90) == 'x{v="a\\"b\\\\c"}[90s]'


def test_render_query_rejects_an_unknown_variable() -> None:
    with pytest.raises(ValueError, match=r"unknown template variable \{\{service\}\}"):
        render_query("x{s='{{service}}'}", "1", 60)


@pytest.mark.parametrize(
    ("status", "body", "value"),
    [(200, SCALAR, 1.0), (200, VECTOR_ONE, 0.25)],
)
def test_one_number_is_the_value(status: int, body: str, value: float) -> None:
    result = parse_response(status, body)
    assert (result.value, result.error) == (value, None)


@pytest.mark.parametrize("body", [VECTOR_EMPTY, SCALAR_NAN, SCALAR_INF, VECTOR_NAN])
def test_empty_nan_and_inf_are_no_data(body: str) -> None:
    result = parse_response(200, body)
    assert (result.value, result.error) == (None, None)


def test_more_than_one_series_asks_to_aggregate() -> None:
    assert parse_response(200, VECTOR_TWO).error == "query returned 2 series; aggregate it to one (e.g. with sum)"


def test_a_range_vector_or_a_string_is_an_error() -> None:
    assert "range vector" in (parse_response(200, MATRIX).error or "")
    assert parse_response(200, STRING).error == "query returned a string, not a number"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, BAD_DATA, 'bad_data: invalid parameter "query": 1:17: parse error: unclosed left parenthesis'),
        (422, EXECUTION, "execution: found duplicate series for the match group"),
        (503, TIMEOUT, "timeout: query timed out in expression evaluation"),
        (502, "<html><body>Bad Gateway</body></html>", "HTTP 502: <html><body>Bad Gateway</body></html>"),
        (200, "not json", "the answer is not Prometheus API JSON: not json"),
    ],
)
def test_errors_carry_prometheus_message_on_one_line(status: int, body: str, expected: str) -> None:
    error = parse_response(status, body).error
    assert error is not None and error.startswith(expected)
    assert "\n" not in error


def _provider(handler: Any, **metric: Any) -> tuple[PrometheusProvider, list[str]]:
    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        assert request.url.params["timeout"] == "3s"  # Prometheus gives up when shiprail does
        seen.append(query)
        return handler(request, query)

    config = PrometheusProviderConfig(type="prometheus", url="http://prom.test:9090/", timeout=3)
    client = httpx.Client(transport=httpx.MockTransport(respond))
    return PrometheusProvider(config, client=client), seen


ERROR_RATE = Metric(
    kind="error_rate",
    query='sum(rate(r{v="{{version}}",code=~"5.."}[{{window}}])) / sum(rate(r{v="{{version}}"}[{{window}}]))',
    count_query='sum(increase(r{v="{{version}}"}[{{window}}]))',
)


def test_query_runs_the_template_and_the_count_query() -> None:
    def handler(request: httpx.Request, query: str) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        value = "812" if query.startswith("sum(increase") else "0.0125"
        body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]}}
        return httpx.Response(200, json=body)

    provider, seen = _provider(handler)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 600) == Sample(0.0125, 812.0)
    assert seen == [
        'sum(rate(r{v="2.4.0",code=~"5.."}[600s])) / sum(rate(r{v="2.4.0"}[600s]))',
        'sum(increase(r{v="2.4.0"}[600s]))',
    ]


def test_no_count_query_means_unknown_count_and_no_second_request() -> None:
    provider, seen = _provider(lambda _r, _q: httpx.Response(200, text=VECTOR_ONE))
    assert provider.query("p99", Metric(kind="latency", query="q"), "1", 60) == Sample(0.25, None)
    assert len(seen) == 1


def test_a_prometheus_error_is_a_failed_sample_naming_the_metric() -> None:
    provider, _ = _provider(lambda _r, _q: httpx.Response(400, text=BAD_DATA))
    sample = provider.query("error_rate", ERROR_RATE, "2.4.0", 60)
    assert sample.value is None
    assert sample.error == (
        "metric 'error_rate': bad_data: invalid parameter \"query\": 1:17: parse error: unclosed left parenthesis"
    )


def test_a_failing_count_query_fails_the_sample() -> None:
    def handler(_r: httpx.Request, query: str) -> httpx.Response:
        return httpx.Response(422, text=EXECUTION) if "increase" in query else httpx.Response(200, text=VECTOR_ONE)

    provider, _ = _provider(handler)
    sample = provider.query("error_rate", ERROR_RATE, "2.4.0", 60)
    assert sample.error is not None and sample.error.startswith("metric 'error_rate' count_query: execution:")


def test_empty_result_is_no_data_not_an_error() -> None:
    provider, _ = _provider(lambda _r, _q: httpx.Response(200, text=VECTOR_EMPTY))
    assert provider.query("error_rate", ERROR_RATE, "9.9.9", 60) == Sample(None, None)


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_connection_refused_and_timeout_are_one_line_failures() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    config = PrometheusProviderConfig(type="prometheus", url="http://prom.test:9090", timeout=3)
    refused = PrometheusProvider(config, client=httpx.Client(transport=httpx.MockTransport(_refuse)))
    assert refused.query("m", Metric(kind="gauge", query="up"), "1", 60).error == (
        "metric 'm': cannot reach Prometheus at http://prom.test:9090: connection refused"
    )
    timed_out = PrometheusProvider(config, client=httpx.Client(transport=httpx.MockTransport(slow)))
    assert timed_out.query("m", Metric(kind="gauge", query="up"), "1", 60).error == (
        "metric 'm': Prometheus at http://prom.test:9090 did not answer within 3s"
    )


def test_the_failures_of_a_release_stored_with_a_password_in_its_url_do_not_show_it() -> None:
    """plan validate refuses a password in the url now, but a release stored before still runs with
    it: its failed queries go into the analysis evidence, the audit trail and the notifications."""
    config = PrometheusProviderConfig(type="prometheus", url="http://admin:s3cret@prom.test:9090/", timeout=3)
    refused = PrometheusProvider(config, client=httpx.Client(transport=httpx.MockTransport(_refuse)))
    assert refused.query("m", Metric(kind="gauge", query="up"), "1", 60).error == (
        "metric 'm': cannot reach Prometheus at http://prom.test:9090: connection refused"
    )


def test_a_metric_without_a_query_or_with_a_bad_template_fails_clearly() -> None:
    provider, seen = _provider(lambda _r, _q: httpx.Response(200, text=VECTOR_ONE))
    assert "has no query" in (provider.query("m", Metric(kind="gauge"), "1", 60).error or "")
    assert "unknown template variable {{env}}" in (
        provider.query("m", Metric(kind="gauge", query="x{e='{{env}}'}"), "1", 60).error or ""
    )
    assert seen == []


def test_build_provider_picks_prometheus() -> None:
    config = PrometheusProviderConfig(type="prometheus", url="http://127.0.0.1:9090", timeout=5)
    provider = build_provider(config, clock=SimulatedClock())
    assert isinstance(provider, PrometheusProvider)
    assert json.dumps(provider.config.model_dump(mode="json")) == (
        '{"type": "prometheus", "url": "http://127.0.0.1:9090", "timeout": "5s"}'
    )


def _vector(*series: tuple[str, str]) -> str:
    import json

    result = [{"metric": {"le": le}, "value": [1, value]} for le, value in series]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def test_parse_buckets_reads_one_series_per_le() -> None:
    from shiprail.providers.prometheus import parse_buckets

    assert parse_buckets(200, _vector(("0.1", "3"), ("+Inf", "5"), ("0.5", "4.5"))) == (
        ((0.1, 3.0), (0.5, 4.5), (float("inf"), 5.0)),
        None,
    )
    assert parse_buckets(200, _vector()) == (None, None)
    assert parse_buckets(200, _vector(("0.1", "3"))) == (None, 'buckets_query returned no le="+Inf" bucket (the total)')
    assert parse_buckets(200, _vector(("0.1", "3"), ("0.1", "4"), ("+Inf", "5"))) == (
        None,
        "two series for le=0.1; aggregate with sum by (le) (...)",
    )
    assert parse_buckets(400, '{"status": "error", "errorType": "bad_data", "error": "parse error"}') == (
        None,
        "bad_data: parse error",
    )


def test_a_query_may_take_its_three_requests_timeouts() -> None:
    # The controller keeps its lease renewed that long while an analysis asks.
    provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url="http://127.0.0.1:9", timeout=4))
    assert provider.call_timeout_s == 12.0
    provider.close()


def test_an_info_annotation_among_the_warnings_is_no_warning() -> None:
    info = '"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \\"x\\""'
    body = VECTOR_ONE[:-1] + f',"warnings":[{info}]}}'
    assert parse_response(200, body) == Result(value=0.25)


def test_a_config_without_credentials_serialises_as_before_they_existed() -> None:
    # The provider is hashed into the resolved release that approvals approve: its hash must not move.
    config = PrometheusProviderConfig(type="prometheus", url="http://127.0.0.1:9090")
    assert config.model_dump() == {"type": "prometheus", "url": "http://127.0.0.1:9090", "timeout": "10s"}
    with_token = PrometheusProviderConfig(type="prometheus", url="http://p", bearer_token_env="PROM_TOKEN")
    assert with_token.model_dump()["bearer_token_env"] == "PROM_TOKEN"


@pytest.mark.parametrize(
    ("auth", "why"),
    [
        ({"username": "admin"}, "basic auth needs both username and password_env"),
        ({"password_env": "P"}, "basic auth needs both username and password_env"),
        (
            {"bearer_token_env": "T", "username": "admin", "password_env": "P"},
            "give bearer_token_env or username and password_env, not both",
        ),
        ({"bearer_token_env": "PROM-TOKEN"}, "the value is not an environment variable's name"),
    ],
)
def test_credentials_are_one_complete_way_to_authenticate(auth: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        PrometheusProviderConfig(type="prometheus", url="http://p", **auth)
