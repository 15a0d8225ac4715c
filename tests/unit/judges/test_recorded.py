"""Recorded counts: the CSV layouts, their errors, and verdicts equal to the tests' own."""

from __future__ import annotations

import json
import math

import pytest

from shiprail.errors import BadInput
from shiprail.judges import LatencyRegressionTest, RateRegressionTest
from shiprail.judges.contract import regression_test
from shiprail.judges.recorded import Recorded, judge_recorded, package_settings, parse_package, parse_recorded
from shiprail.schema.plan import Regression

RATES = """time,canary_requests,canary_events,baseline_requests,baseline_events
12:01,1000,1,9000,9
12:02,2000,3,18000,17

12:03,3000,12,27000,26
12:04,4000,30,36000,35
12:05,5000,31,45000,44
"""

LATENCY = """version,time,0.1,0.5,+Inf
canary,12:01,80,99,100
baseline,12:01,720,895,900
baseline,12:02,1440,1790,1800
canary,12:02,150,190,200
"""


def test_a_rates_file_gives_one_analysis_per_row_with_its_line_and_label() -> None:
    recorded = parse_recorded(RATES, "r.csv")
    assert recorded.kind == "error_rate"
    assert [(look.line, look.label) for look in recorded.looks] == [
        (2, "12:01"),
        (3, "12:02"),
        (5, "12:03"),
        (6, "12:04"),
        (7, "12:05"),
    ]
    assert recorded.looks[2].rates == (3000.0, 12.0, 27000.0, 26.0)


def test_a_latency_file_pairs_a_canary_row_with_a_baseline_row_in_either_order() -> None:
    recorded = parse_recorded(LATENCY, "l.csv")
    assert recorded.kind == "latency"
    assert [(look.line, look.label) for look in recorded.looks] == [(3, "12:01"), (5, "12:02")]
    second = recorded.looks[1]
    assert second.canary_buckets == {0.1: 150.0, 0.5: 190.0, math.inf: 200.0}
    assert second.baseline_buckets == {0.1: 1440.0, 0.5: 1790.0, math.inf: 1800.0}
    assert (second.canary_requests, second.baseline_requests) == (200.0, 1800.0)


def test_rates_are_judged_as_the_test_itself_judges_them_and_stop_at_the_first_fail() -> None:
    recorded = parse_recorded(RATES, "r.csv")
    verdicts, rolled_back = judge_recorded(recorded, Regression(alpha=0.01))
    assert rolled_back
    direct = RateRegressionTest(0.01)
    expected = []
    for look in recorded.looks:
        assert look.rates is not None
        nc, ec, nb, eb = look.rates
        expected.append(direct.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb))
        if expected[-1].failed:
            break
    assert [v.decision for v in verdicts] == ["continue", "continue", "fail"]
    assert [v.p_value for v in verdicts] == [v.p_value for v in expected]


def test_rates_with_bursts_tolerated_are_judged_by_the_tolerant_test() -> None:
    recorded = parse_recorded(RATES, "r.csv")
    verdicts, _ = judge_recorded(recorded, Regression(alpha=0.01, bursts="tolerate"))
    assert verdicts[-1].details["bursts"] == "tolerate"


def test_latency_is_judged_by_the_order_test_or_with_a_tolerance_by_the_exceedance_test() -> None:
    recorded = parse_recorded(LATENCY, "l.csv")
    verdicts, _ = judge_recorded(recorded, Regression(alpha=0.05))
    direct = LatencyRegressionTest(0.05)
    expected = [
        direct.update(canary_buckets=look.canary_buckets, baseline_buckets=look.baseline_buckets)
        for look in recorded.looks
    ]
    assert [v.p_value for v in verdicts] == [v.p_value for v in expected]
    test = regression_test("latency", Regression(min_ratio=1.2))
    assert isinstance(test, LatencyRegressionTest)
    assert test.method == "exceedance"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "r.csv: the file is empty; write a header and one row per analysis (see docs/cli.md)"),
        ("\n\n", "r.csv: the file is empty; write a header and one row per analysis (see docs/cli.md)"),
        (
            "canary_requests,canary_events,baseline_requests,baseline_events\n",
            "r.csv: no analyses after the header; write one row per analysis",
        ),
        (
            "requests,errors\n1,0\n",
            "r.csv:1: the header needs the columns canary_requests, canary_events, baseline_requests, baseline_events "
            "(rates) or a version column and bucket bounds (latency)",
        ),
        (
            "canary_requests,canary_events,baseline_requests,baseline_events\n10,1,90,1\n20,x,180,2\n",
            "r.csv:3: canary_events: 'x' is not a count; write a number of at least 0",
        ),
        (  # 200 in Arabic-Indic digits: float() reads it; a count is written in ASCII digits, as elsewhere
            "canary_requests,canary_events,baseline_requests,baseline_events\n10,1,90,1\n\u0662\u0660\u0660,2,180,2\n",
            "r.csv:3: canary_requests: '\u0662\u0660\u0660' is not a count; write it in ASCII digits (0-9)",
        ),
        (  # 0.5 in fullwidth digits
            "version,0.1,\uff10.\uff15,+Inf\ncanary,1,2,3\nbaseline,1,2,3\n",
            "r.csv:1: column '\uff10.\uff15' is neither time, version nor a bucket bound (a number or +Inf); "
            "write it in ASCII digits (0-9)",
        ),
        (
            "canary_requests,canary_events,baseline_requests,baseline_events\n10,1,90\n",
            "r.csv:2: 3 cells for the header's 4 columns",
        ),
        (
            "canary_requests,canary_events,baseline_requests,baseline_events,region\n10,1,90,1,eu\n",
            "r.csv:1: unknown column 'region'; a rates file has canary_requests, canary_events, baseline_requests, "
            "baseline_events and time",
        ),
        (
            "version,0.1,0.5\ncanary,1,2\nbaseline,1,2\n",
            "r.csv:1: the bucket bounds need +Inf, the count of every request",
        ),
        (
            "version,fast,+Inf\ncanary,1,2\n",
            "r.csv:1: column 'fast' is neither time, version nor a bucket bound (a number or +Inf)",
        ),
        ("version,0.1,+Inf\ncanary,1,2\nstable,1,2\n", "r.csv:3: version 'stable'; write canary or baseline"),
        (
            "version,0.1,+Inf\ncanary,1,2\ncanary,1,2\n",
            "r.csv:3: a second canary row before the other version's; each analysis is a canary row and a baseline row",
        ),
        (
            "version,0.1,+Inf\ncanary,1,2\nbaseline,1,2\ncanary,2,3\n",
            "r.csv:4: this analysis has no baseline row; add it after line 4",
        ),
        (
            "canary_requests,canary_events,baseline_requests,baseline_events,\n1,0,9,0,\n",
            "r.csv:1: column 5 has no name (a trailing comma?); name or remove it",
        ),
        (
            "version,0.1,0.10,+Inf\ncanary,1,1,2\n",
            "r.csv:1: columns '0.1' and '0.10' are the same bucket bound; keep one",
        ),
        ("version,inf,+Inf\ncanary,1,1\n", "r.csv:1: columns 'inf' and '+Inf' are the same bucket bound; keep one"),
        (
            "version,1e400,+Inf\ncanary,1,1\n",
            "r.csv:1: column '1e400' is not a bucket bound; write a latency (at least 0) or +Inf",
        ),
        (
            "version,-1,+Inf\ncanary,1,1\n",
            "r.csv:1: column '-1' is not a bucket bound; write a latency (at least 0) or +Inf",
        ),
        (
            "version,+Inf\ncanary,1\nbaseline,1\n",
            "r.csv:1: give at least one finite bucket bound besides +Inf (0.1, 0.5, …)",
        ),
        (
            "version,0.1,0.5,+Inf\ncanary,5,4,9\n",
            "r.csv:2: canary: bucket 0.5 counts 4, fewer than bucket 0.1 (5); a bucket counts every request at or "
            "below its bound",
        ),
        (
            "version,0.1,+Inf\ncanary,1,2\nbaseline,5,9\ncanary,3,3\nbaseline,6,10\n",
            "r.csv:4: canary: the requests between 0.1 and +Inf went down from 1 to 0; counts are cumulative since "
            "the rollout began (after a counter reset, start a new file there)",
        ),
        (
            "version,0.1,+Inf\ncanary,1,2\nbaseline,5,9\nbaseline,4,10\ncanary,2,3\n",
            "r.csv:4: baseline: bucket 0.1 went down from 5 to 4; counts are cumulative since the rollout began "
            "(after a counter reset, start a new file there)",
        ),
        (
            "time,version,0.1,+Inf\n12:01,canary,1,2\n12:02,baseline,5,9\n",
            "r.csv:3: the baseline row says time '12:02', its pair on line 2 '12:01'; give both rows of an analysis "
            "the same time",
        ),
        (
            "canary_requests,canary_events,baseline_requests,baseline_events\n1e16,0,9,0\n",
            "r.csv:2: canary_requests: '1e16' is more than 1e+15 requests; check the column",
        ),
        (
            # The quoted label spans lines 2 and 3: the bad row is the one on line 4.
            'time,canary_requests,canary_events,baseline_requests,baseline_events\n"12:01\nUTC",1,0,9,0\n'
            "12:02,2,x,18,0\n",
            "r.csv:4: canary_events: 'x' is not a count; write a number of at least 0",
        ),
    ],
)
def test_a_file_that_cannot_be_read_names_the_line_and_what_to_write(text: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_recorded(text, "r.csv")
    assert info.value.message == message


def test_a_count_that_goes_down_is_refused_naming_its_line() -> None:
    text = "canary_requests,canary_events,baseline_requests,baseline_events\n100,1,900,1\n90,1,950,1\n"
    with pytest.raises(BadInput) as info:
        parse_recorded(text, "r.csv")
    assert info.value.message == (
        "r.csv:3: canary_requests went down from 100 to 90; counts are cumulative since the rollout began "
        "(after a counter reset, start a new file there)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "canary_requests,canary_events,baseline_requests,baseline_events\n1234567,1,900,1\n1234566,1,950,1\n",
            "r.csv:3: canary_requests went down from 1234567 to 1234566; counts are cumulative since the rollout "
            "began (after a counter reset, start a new file there)",
        ),
        (
            "version,0.1,+Inf\ncanary,1234567,1234566\nbaseline,1,2\n",
            "r.csv:2: canary: bucket +Inf counts 1234566, fewer than bucket 0.1 (1234567); a bucket counts every "
            "request at or below its bound",
        ),
    ],
)
def test_counts_a_little_apart_are_told_in_digits_that_differ(text: str, message: str) -> None:
    # With :g both read 1.23457e+06, and the message contradicted itself.
    with pytest.raises(BadInput) as info:
        parse_recorded(text, "r.csv")
    assert info.value.message == message


def test_a_byte_order_mark_blank_lines_and_windows_line_ends_are_read_as_plain_csv() -> None:
    text = "\ufeff\r\n" + RATES.replace("\n", "\r\n")
    recorded = parse_recorded(text, "r.csv")
    assert [(look.line, look.label) for look in recorded.looks] == [
        (3, "12:01"),
        (4, "12:02"),
        (6, "12:03"),
        (7, "12:04"),
        (8, "12:05"),
    ]


def test_bucket_bounds_are_read_in_any_column_order_and_inf_spelled_either_way() -> None:
    text = "version,inf,0.5,0.1\ncanary,100,99,80\nbaseline,900,895,720\n"
    look = parse_recorded(text, "l.csv").looks[0]
    assert look.canary_buckets == {0.1: 80.0, 0.5: 99.0, math.inf: 100.0}


def analysis(at: str, *rows: dict[str, object]) -> dict[str, object]:
    return {"at": at, "status": "ok", "step": 1, "weight": 10, "verdict": "pass", "results": list(rows)}


def rate_row(trigger: str, nc: float, ec: float, nb: float, eb: float) -> dict[str, object]:
    increment = {"canary_requests": nc, "baseline_requests": nb, "canary_events": ec, "baseline_events": eb}
    return {"trigger": trigger, "verdict": "pass", "increment": increment}


def latency_row(
    trigger: str, canary: list[list[float | None]], baseline: list[list[float | None]]
) -> dict[str, object]:
    increment = {
        "canary_requests": canary[-1][1] if canary else 0.0,
        "baseline_requests": baseline[-1][1] if baseline else 0.0,
        "canary_buckets": canary,
        "baseline_buckets": baseline,
    }
    return {"trigger": trigger, "verdict": "pass", "increment": increment}


def test_a_package_gives_each_analysis_the_running_sums_of_the_trigger_s_increments() -> None:
    package = {
        "analyses": [
            analysis("t1", rate_row("errors", 1000, 1, 9000, 9), {"trigger": "p99", "verdict": "pass"}),
            analysis("t2", {"trigger": "p99", "verdict": "pass"}),
            analysis("t3", rate_row("errors", 1000, 2, 9000, 8)),
        ]
    }
    recorded, trigger = parse_package(json.dumps(package), "rollout.json", None)
    assert (recorded.kind, trigger) == ("error_rate", "errors")
    assert [(look.line, look.label, look.where, look.rates) for look in recorded.looks] == [
        (1, "t1", "rollout.json, analysis 1", (1000.0, 1.0, 9000.0, 9.0)),
        (3, "t3", "rollout.json, analysis 3", (2000.0, 3.0, 18000.0, 17.0)),
    ]


def test_a_package_s_latency_increments_add_up_bound_by_bound() -> None:
    row = latency_row("latency", [[0.1, 8.0], [None, 10.0]], [[0.1, 80.0], [None, 90.0]])
    package = {"analyses": [analysis("t1", row), analysis("t2", row)]}
    recorded, _ = parse_package(json.dumps(package), "rollout.json", "latency")
    assert recorded.kind == "latency"
    assert recorded.looks[1].canary_buckets == {0.1: 16.0, math.inf: 20.0}
    assert recorded.looks[1].baseline_buckets == {0.1: 160.0, math.inf: 180.0}


def test_a_package_whose_bucket_bounds_change_is_refused_naming_the_analysis() -> None:
    row = latency_row("latency", [[0.1, 8.0], [None, 10.0]], [[0.1, 80.0], [None, 90.0]])
    stale = latency_row("latency", [[None, 10.0]], [[0.1, 80.0], [None, 90.0]])
    package = {"analyses": [analysis("t1", row), analysis("t2", stale)]}
    with pytest.raises(BadInput) as info:
        parse_package(json.dumps(package), "rollout.json", "latency")
    assert info.value.message == (
        "rollout.json, analysis 2: canary buckets changed (le 0.1 no longer comes); the test compares the same "
        "buckets throughout a release"
    )


@pytest.mark.parametrize(
    ("text", "trigger", "message"),
    [
        (
            "{",
            None,
            "rollout.json:1: not JSON (Expecting property name enclosed in double quotes); give a release "
            "package's rollout.json",
        ),
        ("{}", None, "rollout.json: no analyses; give the rollout.json of a release package (shiprail release export)"),
        (
            "",
            None,
            "rollout.json: the file is empty; give the rollout.json of a release package (shiprail release export)",
        ),
        (
            "\ufeff \n",
            None,
            "rollout.json: the file is empty; give the rollout.json of a release package (shiprail release export)",
        ),
        (
            json.dumps({"analyses": [analysis("t1", {"trigger": "p99", "verdict": "pass"})]}),
            None,
            "rollout.json: no analysis stored a regression trigger's counts; nothing to judge",
        ),
        (
            json.dumps({"analyses": [analysis("t1", rate_row("b", 1, 0, 9, 0), rate_row("a", 1, 0, 9, 0))]}),
            None,
            "rollout.json: 2 regression triggers ('a', 'b'); choose one with --trigger",
        ),
        (
            json.dumps({"analyses": [analysis("t1", rate_row("a", 1, 0, 9, 0))]}),
            "c",
            "--trigger 'c': rollout.json holds the counts of 'a' only",
        ),
        (
            json.dumps({"analyses": [analysis("t1", {"trigger": "a", "increment": {"canary_requests": 1}})]}),
            None,
            "rollout.json: analysis 1, trigger 'a': the increment is not as shiprail writes it (requests per version, "
            "and events or buckets)",
        ),
    ],
)
def test_a_package_that_cannot_be_replayed_says_why(text: str, trigger: str | None, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_package(text, "rollout.json", trigger)
    assert info.value.message == message


def plan_json(trigger: dict[str, object]) -> str:
    return json.dumps({"contract": {"triggers": [{"name": "p99", "metric": "latency_p99", "above": 0.5}, trigger]}})


def test_the_trigger_s_settings_and_consecutive_come_from_the_resolved_plan_read_leniently() -> None:
    trigger = {"name": "errors", "metric": "error_rate", "regression": {"alpha": 0.001, "bursts": "tolerate"}}
    found = package_settings(
        plan_json(trigger | {"consecutive": 3, "from_a_newer_shiprail": True}), "plan.json", "errors"
    )
    assert (found.regression.alpha, found.regression.min_ratio, found.regression.bursts) == (0.001, 1.0, "tolerate")
    assert found.consecutive == 3
    # A trigger without a name is known by its metric.
    unnamed = {"metric": "error_rate", "regression": {}}
    assert package_settings(plan_json(unnamed), "plan.json", "error_rate").regression == Regression()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "not json",
            "plan.json:1: not JSON (Expecting value), so not a resolved plan; give --alpha, --min-ratio, --bursts "
            "and --consecutive",
        ),
        (
            '{"contract":\n {"triggers": [}}',
            "plan.json:2: not JSON (Expecting value), so not a resolved plan; give --alpha, --min-ratio, --bursts "
            "and --consecutive",
        ),
        (
            "{}",
            "plan.json: not a resolved plan (contract.triggers); give --alpha, --min-ratio, --bursts and --consecutive",
        ),
        (
            plan_json({"name": "other", "metric": "error_rate", "regression": {}}),
            "plan.json: no regression trigger 'errors' in its contract; give --alpha, --min-ratio, --bursts and "
            "--consecutive",
        ),
        (
            plan_json({"name": "errors", "metric": "error_rate", "regression": {"alpha": "often"}}),
            "plan.json: trigger 'errors' has unusable regression settings; give --alpha, --min-ratio, --bursts and "
            "--consecutive",
        ),
    ],
)
def test_a_plan_that_does_not_give_the_trigger_s_settings_is_refused(text: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        package_settings(text, "plan.json", "errors")
    assert info.value.message == message


def test_consecutive_fails_roll_back_at_the_nth_in_a_row_and_a_gap_restarts_the_count() -> None:
    strong = rate_row("errors", 1000, 20, 9000, 9)
    gap = {"trigger": "errors", "verdict": "inconclusive"}
    rows = [strong, strong, gap, strong, strong, strong]
    package = {"analyses": [analysis(f"t{i}", row) for i, row in enumerate(rows, 1)]}
    recorded, _ = parse_package(json.dumps(package), "rollout.json", None)
    assert [(look.number, look.after_gap) for look in recorded.looks] == [
        (1, False),
        (2, False),
        (4, True),
        (5, False),
        (6, False),
    ]
    verdicts, rolled_back = judge_recorded(recorded, Regression(alpha=0.05), consecutive=3)
    assert [v.decision for v in verdicts] == ["fail"] * 5 and rolled_back  # fails 1, 2; gap; 4, 5, 6 → the 3rd is 6
    assert len(verdicts) == 5
    _, rolled_back = judge_recorded(Recorded("r", "error_rate", recorded.looks[:4]), Regression(alpha=0.05), 3)
    assert not rolled_back


def test_latency_analyses_before_both_versions_have_buckets_are_not_judged_as_in_the_controller() -> None:
    empty = latency_row("latency", [], [[0.1, 80.0], [None, 90.0]])  # the canary had no series yet
    row = latency_row("latency", [[0.1, 8.0], [None, 10.0]], [[0.1, 80.0], [None, 90.0]])
    package = {"analyses": [analysis("t1", empty), analysis("t2", row)]}
    recorded, _ = parse_package(json.dumps(package), "rollout.json", None)
    assert [(look.number, look.after_gap) for look in recorded.looks] == [(2, True)]
    assert recorded.looks[0].baseline_buckets == {0.1: 160.0, math.inf: 180.0}


def test_raw_counters_are_counted_from_the_first_analysis_which_is_not_judged() -> None:
    # The same analyses as RATES, on counters that had counted 5,000,000 requests before the rollout.
    start = "11:59,500000,1500,4500000,13500\n"
    shifted = [RATES.splitlines()[0], start.strip()]
    for line in RATES.splitlines()[1:]:
        if line:
            t, nc, ec, nb, eb = line.split(",")
            shifted.append(f"{t},{int(nc) + 500000},{int(ec) + 1500},{int(nb) + 4500000},{int(eb) + 13500}")
    raw = parse_recorded("\n".join(shifted) + "\n", "r.csv", raw_counters=True)
    plain = parse_recorded(RATES, "r.csv")
    assert [(look.number, look.label, look.rates) for look in raw.looks] == [
        (look.number, look.label, look.rates) for look in plain.looks
    ]
    assert [look.line for look in raw.looks] == [3, 4, 5, 6, 7]
    verdicts, _ = judge_recorded(raw, Regression())
    assert [v.p_value for v in verdicts] == [v.p_value for v in judge_recorded(plain, Regression())[0]]


def test_raw_latency_counters_subtract_the_first_pair_bound_by_bound() -> None:
    text = "version,0.1,+Inf\ncanary,10,20\nbaseline,100,200\ncanary,18,30\nbaseline,180,300\n"
    [look] = parse_recorded(text, "l.csv", raw_counters=True).looks
    assert (look.number, look.canary_buckets, look.baseline_buckets) == (
        1,
        {0.1: 8.0, math.inf: 10.0},
        {0.1: 80.0, math.inf: 100.0},
    )


def test_raw_fractional_counters_that_grew_alike_stay_cumulative_after_the_subtraction() -> None:
    # 4.1 - 3.9 is 0.1999999999999993 and 3.3 - 3.1 is 0.19999999999999973: +Inf a hair below 0.1.
    text = "version,0.1,0.25,+Inf\ncanary,3.1,3.9,9.9\nbaseline,30,40,100\ncanary,3.3,4.1,10.1\nbaseline,31,41,102\n"
    [look] = parse_recorded(text, "l.csv", raw_counters=True).looks
    counts = list(look.canary_buckets.values())
    assert counts == sorted(counts)
    assert counts == pytest.approx([0.2, 0.2, 0.2], rel=1e-12)


@pytest.mark.parametrize("raw", [False, True])
def test_fractional_buckets_whose_differences_round_apart_are_not_read_as_going_down(raw: bool) -> None:
    # 7.7 - 6.8 and 8.2 - 7.3 are both 0.9 but not as floats: no bucket's share went down.
    text = "version,0.1,0.25,+Inf\ncanary,6.8,7.7,11.8\nbaseline,68,77,118\ncanary,7.3,8.2,12.3\nbaseline,73,82,123\n"
    looks = parse_recorded(text, "l.csv", raw_counters=raw).looks
    assert len(looks) == (1 if raw else 2)


def test_counts_that_are_not_cumulative_say_so_in_every_digit_they_need() -> None:
    with pytest.raises(BadInput) as info:
        test = LatencyRegressionTest(0.05)
        test.update(canary_buckets={0.1: 0.2, math.inf: 0.19999999999999973}, baseline_buckets={0.1: 1, math.inf: 2})
    assert info.value.message == (
        "canary_buckets: bucket +Inf counts 0.19999999999999973, fewer than bucket 0.1 (0.2); counts are cumulative"
    )


def test_raw_counters_need_an_analysis_after_the_start() -> None:
    with pytest.raises(BadInput) as info:
        parse_recorded(RATES.splitlines()[0] + "\n12:00,1,0,9,0\n", "r.csv", raw_counters=True)
    assert info.value.message == "r.csv: --raw-counters needs the rollout's start and at least one analysis after it"
