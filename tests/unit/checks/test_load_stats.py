"""Locust stats CSVs and the load-test thresholds."""

from __future__ import annotations

import pytest

from shiprail.checks.load_test import LoadStats, StatsError, judge, parse_stats_csv, verdict
from shiprail.schema.plan import LoadThresholds

# The header and rows Locust 2.x writes to PREFIX_stats.csv (a real run, numbers trimmed).
HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
LOCUST_CSV = f"""{HEADER}
GET,/,34,0,5,6.57,3.5,21.3,497.0,34.8,0.0,5,5,7,9,9,17,21,21,21,21,21
POST,/pay,10,2,8,9.0,4.0,30.0,10.0,10.2,2.0,8,8,9,9,12,25,30,30,30,30,30
,Aggregated,44,2,5,7.1,3.5,30.0,387.0,45.0,2.0,5,6,8,9,10,19,25,30,30,30,30
"""


def test_the_aggregated_row_is_read() -> None:
    stats = parse_stats_csv(LOCUST_CSV)
    assert stats == LoadStats(
        requests=44, failures=2, rps=45.0, p95_ms=19.0, median_ms=5.0, average_ms=7.1, max_ms=30.0
    )
    assert stats.error_rate == pytest.approx(2 / 44)


def test_older_column_names_are_read_too() -> None:
    text = "Type,Name,# requests,# failures,Requests/s,95%\n,Aggregated,100,1,20.5,120\n"
    assert parse_stats_csv(text) == LoadStats(requests=100, failures=1, rps=20.5, p95_ms=120.0)


def test_an_empty_run_has_no_percentiles() -> None:
    stats = parse_stats_csv(f"{HEADER}\n,Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n")
    assert (stats.requests, stats.p95_ms, stats.error_rate) == (0, None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "it is empty"),
        ("Type,Name,Requests/s\n,Aggregated,3\n", "it has no 'Request Count' column"),
        (
            f"{HEADER}\nGET,/,34,0,5,6.57,3.5,21.3,497.0,34.8,0.0,5,5,7,9,9,17,21,21,21,21,21\n",
            "it has no 'Aggregated' row",
        ),
        ("Type,Name,Request Count,Failure Count\n,Aggregated,many,0\n", "its 'Aggregated' row has no request or"),
        ("Type,Name,Request Count,Failure Count\n,Aggregated,NaN,0\n", "its 'Aggregated' row has no request or"),
        ("Type,Name,Request Count,Failure Count\n,Aggregated,inf,0\n", "its 'Aggregated' row has no request or"),
        ("Type,Name,Request Count,Failure Count\n,Aggregated,100,-100\n", "its 'Aggregated' row has no request or"),
        ("Type,Name,Request Count,Failure Count\n,Aggregated,10,20\n", "its 'Aggregated' row counts 20 failures of 10"),
    ],
)
def test_unusable_csvs_are_refused(text: str, message: str) -> None:
    with pytest.raises(StatsError) as caught:
        parse_stats_csv(text)
    assert str(caught.value).startswith(message)


def test_a_percentile_no_measurement_has_is_no_number() -> None:
    text = "Type,Name,Request Count,Failure Count,Requests/s,95%\n,Aggregated,100,1,nan,-5\n"
    assert parse_stats_csv(text) == LoadStats(requests=100, failures=1, rps=None, p95_ms=None)


def thresholds(**limits: float) -> LoadThresholds:
    return LoadThresholds.model_validate(limits)


def test_every_threshold_within_its_limit_passes() -> None:
    stats = parse_stats_csv(LOCUST_CSV)
    results = judge(stats, thresholds(p95_ms=19, error_rate=0.05, min_rps=45))  # the limits are inclusive
    assert [(r.name, r.value, r.limit, r.passed) for r in results] == [
        ("p95_ms", 19.0, 19.0, True),
        ("error_rate", pytest.approx(2 / 44), 0.05, True),
        ("min_rps", 45.0, 45.0, True),
    ]
    assert verdict(stats, results) == (
        True,
        "p95 19 ms <= 19 ms; error rate 4.55% <= 5.00%; 45.0 req/s >= 45 req/s; 44 requests, 2 failed",
    )
    assert results[2].to_json() == {
        "threshold": "min_rps",
        "value": 45.0,
        "limit": 45.0,
        "comparison": ">=",
        "passed": True,
        "text": "45.0 req/s >= 45 req/s",
    }


def test_a_threshold_outside_its_limit_fails_and_is_named_first() -> None:
    stats = parse_stats_csv(LOCUST_CSV)
    results = judge(stats, thresholds(p95_ms=300, error_rate=0.01, min_rps=1_000_000))
    assert [r.passed for r in results] == [True, False, False]
    passed, summary = verdict(stats, results)
    assert not passed
    assert summary == (
        "2 of 3 thresholds failed: error rate 4.55% > 1.00%; 45.0 req/s < 1000000 req/s "
        "(held: p95 19 ms <= 300 ms); 44 requests, 2 failed"
    )


def test_only_the_thresholds_the_plan_sets_are_judged() -> None:
    results = judge(parse_stats_csv(LOCUST_CSV), thresholds(p95_ms=10))
    assert [(r.name, r.passed, r.text) for r in results] == [("p95_ms", False, "p95 19 ms > 10 ms")]


def test_missing_numbers_fail_their_thresholds() -> None:
    stats = LoadStats(requests=0, failures=0, rps=None, p95_ms=None)
    results = judge(stats, thresholds(p95_ms=300, error_rate=0.01, min_rps=1))
    assert [r.passed for r in results] == [False, False, False]
    assert verdict(stats, results) == (
        False,
        "no requests were made; p95 unknown (limit 300 ms); error rate unknown (limit 1.00%); "
        "throughput unknown (minimum 1 req/s)",
    )


def test_no_threshold_never_passes() -> None:
    stats = parse_stats_csv(LOCUST_CSV)
    assert verdict(stats, judge(stats, LoadThresholds())) == (
        False,
        "no thresholds to judge the run by; 44 requests, 2 failed",
    )


@pytest.mark.parametrize(
    ("stats", "error_rate", "expected"),
    [
        (
            LoadStats(requests=100_000, failures=1010, rps=9.96, p95_ms=300.04),
            0.01,
            [(False, "p95 300.04 ms > 300 ms"), (False, "error rate 1.01% > 1.00%"), (False, "9.96 req/s < 10 req/s")],
        ),
        (
            LoadStats(requests=1_000_000, failures=10_001, rps=10.04, p95_ms=299.96),
            0.01,
            [
                (True, "p95 299.96 ms <= 300 ms"),
                (False, "error rate 1.0001% > 1.00%"),
                (True, "10.04 req/s >= 10 req/s"),
            ],
        ),
        (
            LoadStats(requests=100_000, failures=120, rps=12.0, p95_ms=300.0),
            0.00125,
            [(True, "p95 300 ms <= 300 ms"), (True, "error rate 0.120% <= 0.125%"), (True, "12.0 req/s >= 10 req/s")],
        ),
    ],
)
def test_a_value_just_past_its_limit_is_never_printed_as_the_limit(
    stats: LoadStats, error_rate: float, expected: list[tuple[bool, str]]
) -> None:
    # 9.96 req/s printed "10.0 req/s < 10 req/s", 1.01 % "1.00% > 1.00%", 300.04 ms "300 ms > 300 ms",
    # and a 0.125 % limit "0.13%": a failed gate whose reason reads as if it had passed.
    results = judge(stats, thresholds(p95_ms=300, error_rate=error_rate, min_rps=10))
    assert [(r.passed, r.text) for r in results] == expected
