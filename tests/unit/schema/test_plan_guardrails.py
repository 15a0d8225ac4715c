"""The guardrails of a release plan (issue #2): one test per rule, each asserting the exact line.

Every test starts from the example plan written by ``shiprail init`` (a valid high-risk plan),
applies an edit, writes the result to ``releases/bad.yaml`` and asserts the full text of every
problem: ``file:line: field.path: message``. Edits that remove lines comment them out instead,
so the line numbers below stay those of the example file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shiprail.errors import PlanInvalid
from shiprail.project import CheckedPlan, check_plan_file
from shiprail.schema.source import parse_yaml

EXAMPLE = "releases/checkout-2.4.0.yaml"
BAD = "releases/bad.yaml"

Edit = tuple[str, str]
Check = Callable[..., list[str]]

# Blocks of the example plan (line numbers of the example file in the comments).
ERRORS_TRIGGER = """\
    - name: errors
      metric: error_rate
      above: 0.01          # more than 1% of requests fail
      window: 5m
      min_samples: 200
"""  # lines 19-23
SLOW_TRIGGER = """\
    - name: slow
      metric: latency_p99
      above_baseline: 2    # p99 more than twice the baseline's
      window: 5m
"""  # lines 24-27
COMPLAINTS_TRIGGER = """\
    - name: complaints
      signal: customer_complaint
      above: 3             # more than 3 customer complaints
      window: 1h
"""  # lines 28-31
ERROR_REGRESSION = """\
    - name: error-regression
      metric: error_rate
      regression: {alpha: 0.01}
"""  # lines 35-37
LATENCY_REGRESSION = """\
    - name: latency-regression
      metric: latency_p99
      regression: {alpha: 0.01}
"""  # lines 38-40
REGRESSION_TRIGGERS = f"""\
    # Canary against baseline: the sequential judge (docs/judges.md) tests the canary's error rate
    # and latency against the baseline's at every analysis, on everything since the rollout began
    # (so no window). alpha 0.01: each rolls a healthy canary back by chance at most 1% of the time.
{ERROR_REGRESSION}{LATENCY_REGRESSION}\
"""  # lines 32-40
CONTRACT = f"""\
rollback_contract:
  triggers:
{ERRORS_TRIGGER}{SLOW_TRIGGER}{COMPLAINTS_TRIGGER}{REGRESSION_TRIGGERS}\
  on_no_data: pause
  revert:
    max_duration: 5m
"""  # lines 17-43
COMMUNICATION = """\
communication:
  - audience: engineering
    notify: [releases-slack]
    on: [approved, started, step, paused, rolled_back, override, completed, held]
  - audience: support
    notify: [status-page]
    on: [started, rolled_back, completed]
  - audience: on-call
    notify: [oncall-email]
    on: [started, rolled_back, verifying, handover]
"""  # lines 45-54
QA_CHECKLIST = """\
  qa_checklist:
    - Pay with a saved card
    - Pay with a new card and save it
    - A declined saved card shows the retry screen
"""  # lines 62-65
LOAD_TEST = """\
  load_test:
    locustfile: load/checkout.py
    host: http://127.0.0.1:8002
    users: 50
    spawn_rate: 10
    duration: 2m
    thresholds: {p95_ms: 300, error_rate: 0.01, min_rps: 100}
"""  # lines 66-72
STEPS = """\
    - {weight: 1, bake: 30m}
    - {weight: 10, bake: 2h}
    - {weight: 50, bake: 4h}
    - {weight: 100}
"""  # lines 76-79
RISK_COMMENT = "# risk is computed from the tags (payments -> high); a plan may raise it, never lower it."  # line 15


def removed(block: str) -> Edit:
    """An edit that comments ``block`` out line by line, so no later line number moves."""
    return block, "".join("#\n" for _ in block.splitlines())


def in_block(block: str, old: str, new: str) -> Edit:
    """An edit replacing ``old`` by ``new`` inside ``block`` only (``old`` may occur elsewhere)."""
    assert block.count(old) == 1, f"{old!r} must occur exactly once in the block"
    return block, block.replace(old, new)


def apply(text: str, edits: tuple[Edit, ...]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, f"the edit target {old!r} must occur exactly once in the plan"
        text = text.replace(old, new)
    return text


@pytest.fixture
def check(project: Path, monkeypatch: pytest.MonkeyPatch) -> Check:
    """``check(*edits)``: the example plan with ``edits`` applied, as ``releases/bad.yaml``; its problems."""
    monkeypatch.chdir(project)
    example = (project / EXAMPLE).read_text(encoding="utf-8")

    def run(*edits: Edit) -> list[str]:
        (project / BAD).write_text(apply(example, edits), encoding="utf-8")
        try:
            check_plan_file(project / BAD)
        except PlanInvalid as exc:
            return [str(p) for p in exc.problems]
        return []

    return run


def edit_file(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# ------------------------------------------------------------------------------------ basics


def test_the_example_plan_is_valid(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    checked = check_plan_file(project / EXAMPLE)
    assert isinstance(checked, CheckedPlan)
    assert checked.file == EXAMPLE
    assert checked.resolved.risk == "high"
    assert checked.resolved.approvals_required == 2
    assert [(s.weight, s.bake) for s in checked.resolved.steps] == [(1, 1800), (10, 7200), (50, 14400), (100, None)]


def test_an_unedited_copy_has_no_problems(check: Check) -> None:
    assert check() == []


def test_the_issue_example_names_file_line_and_field_path(check: Check) -> None:
    assert check(in_block(SLOW_TRIGGER, "above_baseline: 2 ", "above: if it breaks ")) == [
        f"{BAD}:26: rollback_contract.triggers[1].above: a number is required, got 'if it breaks'"
    ]


def test_the_file_is_named_in_full_when_outside_the_working_directory(
    check: Check, project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    check()  # writes releases/bad.yaml
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    (project / BAD).write_text(
        (project / BAD).read_text(encoding="utf-8").replace("on_call: bob", "on_call: bobby"), encoding="utf-8"
    )
    with pytest.raises(PlanInvalid) as exc:
        check_plan_file(project / BAD)
    assert [str(p) for p in exc.value.problems] == [
        f"{(project / BAD).resolve()}:83: verify.on_call: 'bobby' is not a person in shiprail.yaml; "
        "add them under people; did you mean 'bob'?"
    ]


def test_problems_in_every_section_are_reported_at_once_in_file_order(check: Check) -> None:
    assert check(
        (RISK_COMMENT, "risk: low"),
        in_block(ERRORS_TRIGGER, "above: 0.01", "above: if it breaks"),
        ("notify: [status-page]", "notify: [status-pages]"),
        ("{weight: 10, bake: 2h}", "{weight: 10, bake: 1h}"),
        ("  window: 24h", "  window: 12h"),
        ("on_call: bob", "on_call: bobby"),
    ) == [
        f"{BAD}:15: risk: 'low' is below the 'high' the tags imply (tag payments is high-risk in shiprail.yaml); "
        "raise it or change the tags",
        f"{BAD}:21: rollback_contract.triggers[0].above: a number is required, got 'if it breaks'",
        f"{BAD}:50: communication[1].notify[0]: channel 'status-pages' is not defined in shiprail.yaml channels; "
        "did you mean 'status-page'?",
        f"{BAD}:77: rollout.steps[1].bake: 1h is below the 2h shiprail.yaml requires at weight 10 for high risk",
        f"{BAD}:82: verify.window: 12h is below the 1d validation window shiprail.yaml requires",
        f"{BAD}:83: verify.on_call: 'bobby' is not a person in shiprail.yaml; add them under people; "
        "did you mean 'bob'?",
    ]


def test_problems_of_the_plan_and_of_its_service_are_reported_together(check: Check, project: Path) -> None:
    edit_file(project, "services/checkout.yaml", "kind: latency", "kind: latncy")
    assert check(("on_call: bob", "on_call: bobby")) == [
        f"{BAD}:83: verify.on_call: 'bobby' is not a person in shiprail.yaml; add them under people; "
        "did you mean 'bob'?",
        "services/checkout.yaml:26: metrics.latency_p99.kind: one of 'error_rate', 'latency', 'rate', 'count', "
        "'ratio', 'gauge' is required, got 'latncy'",
    ]


# ---------------------------------------------------------------------------- the contract


def test_no_contract(check: Check) -> None:
    assert check(removed(CONTRACT)) == [
        f"{BAD}:2: rollback_contract: a rollback contract is required (no contract, no release); "
        "see `shiprail init` for an example"
    ]


def test_an_empty_contract_key_is_one_problem(check: Check) -> None:
    assert check((CONTRACT, "rollback_contract:\n" + "#\n" * 26)) == [
        f"{BAD}:17: rollback_contract: a rollback contract is required (no contract, no release); "
        "see `shiprail init` for an example"
    ]


def test_a_required_key_left_empty_is_not_advised_away(check: Check) -> None:
    assert check(('baseline: "2.3.1"', "baseline:")) == [f"{BAD}:4: baseline: a value is required here"]


def test_an_optional_key_left_empty_may_be_given_a_value_or_removed(check: Check) -> None:
    assert check(in_block(ERRORS_TRIGGER, "min_samples: 200", "min_samples:")) == [
        f"{BAD}:23: rollback_contract.triggers[0].min_samples: a value is required here; give one or remove the key"
    ]


def test_a_key_its_trigger_needs_left_empty_is_not_advised_away(check: Check) -> None:
    # Removing `metric:` would leave a trigger watching nothing: the rule about the trigger says so.
    assert check(in_block(ERRORS_TRIGGER, "metric: error_rate", "metric:")) == [
        f"{BAD}:20: rollback_contract.triggers[0].metric: a value is required here"
    ]


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        pytest.param((CONTRACT, "rollback_contract:\n  triggers: []\n" + "#\n" * 25), 18, id="empty-list"),
        pytest.param((CONTRACT, "rollback_contract:\n  on_no_data: pause\n" + "#\n" * 25), 17, id="no-key"),
    ],
)
def test_no_triggers(check: Check, edit: Edit, line: int) -> None:
    assert check(edit) == [f"{BAD}:{line}: rollback_contract.triggers: at least one trigger is required"]


def test_a_trigger_whose_number_is_left_empty(check: Check) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01          # more than 1% of requests fail", "above:")) == [
        f"{BAD}:21: rollback_contract.triggers[0].above: a value is required here"
    ]


def test_a_trigger_without_a_comparison(check: Check) -> None:
    assert check(removed("      above_baseline: 2    # p99 more than twice the baseline's\n")) == [
        f"{BAD}:24: rollback_contract.triggers[1]: a comparison with a number is required: "
        "one of above, below, above_baseline, regression"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("if it breaks", "a number is required, got 'if it breaks'"),
        ("true", "a number is required, got true"),
        ("[0.01]", "a number is required, got a list"),
        (".nan", "a finite number is required, got nan"),
        ("nan", "a finite number is required, got 'nan'"),
        (".inf", "a finite number is required, got inf"),
        ("'-inf'", "a finite number is required, got '-inf'"),
    ],
)
def test_a_number_that_is_not_a_number(check: Check, value: str, message: str) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01 ", f"above: {value} ")) == [
        f"{BAD}:21: rollback_contract.triggers[0].above: {message}"
    ]


def test_a_quoted_number_is_a_number(check: Check) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01 ", "above: '0.01' ")) == []


def test_two_comparisons_in_one_trigger(check: Check) -> None:
    assert check(in_block(SLOW_TRIGGER, "      window: 5m\n", "      above: 1.5\n      window: 5m\n")) == [
        f"{BAD}:26: rollback_contract.triggers[1].above_baseline: one comparison per trigger, "
        "got above and above_baseline; split it into two triggers"
    ]


def test_a_metric_trigger_without_a_window(check: Check) -> None:
    assert check(removed("      window: 5m\n      min_samples: 200\n")) == [
        f"{BAD}:19: rollback_contract.triggers[0].window: a window the metric is measured over is required (e.g. 5m)"
    ]


def test_a_signal_trigger_without_a_window(check: Check) -> None:
    assert check(removed("      window: 1h\n")) == [
        f"{BAD}:28: rollback_contract.triggers[2].window: a window the signals are counted over is required (e.g. 5m)"
    ]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("5 minutes", "a duration like 30s, 5m, 2h or 1d is required, got '5 minutes'"),
        ("60", "a duration like 30s, 5m, 2h or 1d is required, got 60"),
        ("1.5h", "a duration like 30s, 5m, 2h or 1d is required, got '1.5h'"),
        ("0s", "must be longer than 0s"),
    ],
)
def test_a_bad_duration(check: Check, window: str, message: str) -> None:
    assert check(in_block(COMPLAINTS_TRIGGER, "window: 1h", f"window: {window}")) == [
        f"{BAD}:31: rollback_contract.triggers[2].window: {message}"
    ]


@pytest.mark.parametrize(
    ("metric", "hint"),
    [("latency_p95", "; did you mean 'latency_p99'?"), ("cpu_seconds", "")],
)
def test_a_metric_the_service_does_not_define(check: Check, metric: str, hint: str) -> None:
    # Only the unknown metric is reported: it may be the very trigger meant to cover latency.
    assert check(in_block(SLOW_TRIGGER, "metric: latency_p99", f"metric: {metric}")) == [
        f"{BAD}:25: rollback_contract.triggers[1].metric: {metric!r} is not defined by service 'checkout' "
        f"(services/checkout.yaml metrics){hint}"
    ]


def test_a_trigger_watching_nothing(check: Check) -> None:
    assert check(removed("      signal: customer_complaint\n")) == [
        f"{BAD}:28: rollback_contract.triggers[2]: a metric or a signal (customer_complaint, alert) is required"
    ]


def test_a_trigger_with_both_a_metric_and_a_signal(check: Check) -> None:
    assert check(
        in_block(COMPLAINTS_TRIGGER, "      window: 1h\n", "      metric: error_rate\n      window: 1h\n")
    ) == [f"{BAD}:29: rollback_contract.triggers[2].signal: give a metric or a signal, not both"]


def test_an_unknown_signal(check: Check) -> None:
    assert check(in_block(COMPLAINTS_TRIGGER, "signal: customer_complaint", "signal: complaint")) == [
        f"{BAD}:29: rollback_contract.triggers[2].signal: one of 'customer_complaint', 'alert' is required, "
        "got 'complaint'"
    ]


def test_a_signal_compared_with_anything_but_above(check: Check) -> None:
    assert check(in_block(COMPLAINTS_TRIGGER, "above: 3 ", "below: 3 ")) == [
        f"{BAD}:30: rollback_contract.triggers[2].below: "
        "a customer_complaint signal is a count; compare it with above: N"
    ]


def test_a_signal_given_a_regression_test_is_one_problem_naming_the_comparison_and_its_window(check: Check) -> None:
    # A regression trigger has no window; the signal needs above: N and a window, in one sentence.
    judged = COMPLAINTS_TRIGGER.replace("above: 3 ", "regression: {alpha: 0.01} ").replace("      window: 1h\n", "")
    assert check((COMPLAINTS_TRIGGER, judged)) == [
        f"{BAD}:30: rollback_contract.triggers[2].regression: "
        "a customer_complaint signal is a count; compare it with above: N over a window (e.g. window: 1h)"
    ]


def test_a_negative_count_always_fires(check: Check) -> None:
    assert check(in_block(COMPLAINTS_TRIGGER, "above: 3 ", "above: -1 ")) == [
        f"{BAD}:30: rollback_contract.triggers[2].above: a count above -1 always fires; a count cannot be negative"
    ]


def test_a_count_above_zero_is_a_real_threshold(check: Check) -> None:
    assert check(in_block(COMPLAINTS_TRIGGER, "above: 3 ", "above: 0 ")) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_samples", "-5", "cannot be negative, got -5"),
        ("min_samples", "200.5", "a whole number is required, got 200.5"),
        ("consecutive", "0", "must be at least 1, got 0"),
    ],
)
def test_sample_counts(check: Check, field: str, value: str, message: str) -> None:
    assert check(in_block(ERRORS_TRIGGER, "min_samples: 200", f"{field}: {value}")) == [
        f"{BAD}:23: rollback_contract.triggers[0].{field}: {message}"
    ]


@pytest.mark.parametrize("ratio", ["1", "0.5", "0"])
def test_an_above_baseline_ratio_of_one_or_less(check: Check, ratio: str) -> None:
    assert check(in_block(SLOW_TRIGGER, "above_baseline: 2 ", f"above_baseline: {ratio} ")) == [
        f"{BAD}:26: rollback_contract.triggers[1].above_baseline: a ratio of {ratio} fires while the canary is "
        "no worse than the baseline; use a ratio above 1 (2 means twice the baseline)"
    ]


def test_an_above_baseline_ratio_just_over_one_is_accepted(check: Check) -> None:
    assert check(in_block(SLOW_TRIGGER, "above_baseline: 2 ", "above_baseline: 1.2 ")) == []


@pytest.mark.parametrize("value", ["1", "5", "1.5"])
def test_an_error_rate_above_one_can_never_fire(check: Check, value: str) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01 ", f"above: {value} ")) == [
        f"{BAD}:21: rollback_contract.triggers[0].above: {value} can never fire: error_rate is a fraction "
        "between 0 and 1 (write 0.01 for 1%)"
    ]


def test_an_error_rate_above_a_negative_number_always_fires(check: Check) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01 ", "above: -0.01 ")) == [
        f"{BAD}:21: rollback_contract.triggers[0].above: -0.01 always fires: error_rate is never negative"
    ]


def test_an_error_rate_above_zero_is_a_real_threshold(check: Check) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01 ", "above: 0 ")) == []


@pytest.mark.parametrize(
    ("comparison", "message"),
    [
        ("above: -1", "-1 always fires: latency_p99 is never negative"),
        ("below: 0", "0 can never fire: latency_p99 is never negative"),
    ],
)
def test_latency_thresholds_that_never_or_always_fire(check: Check, comparison: str, message: str) -> None:
    field = comparison.split(":")[0]
    assert check(in_block(SLOW_TRIGGER, "above_baseline: 2 ", f"{comparison} ")) == [
        f"{BAD}:26: rollback_contract.triggers[1].{field}: {message}"
    ]


def test_an_error_rate_below_more_than_one_always_fires(check: Check) -> None:
    assert check(in_block(ERRORS_TRIGGER, "above: 0.01 ", "below: 1.5 ")) == [
        f"{BAD}:21: rollback_contract.triggers[0].below: 1.5 always fires: error_rate is a fraction between 0 and 1"
    ]


def test_a_regression_test_with_a_useless_alpha(check: Check) -> None:
    old = "above_baseline: 2    # p99 more than twice the baseline's\n      window: 5m\n"
    assert check(in_block(SLOW_TRIGGER, old, "regression: {alpha: 0.9}\n")) == [
        f"{BAD}:26: rollback_contract.triggers[1].regression.alpha: must be more than 0 and at most 0.5 "
        "(a false-rollback rate, e.g. 0.01), got 0.9"
    ]


def test_a_regression_test_with_a_window_a_bad_min_ratio_or_on_a_count(check: Check) -> None:
    assert check(in_block(SLOW_TRIGGER, "above_baseline: 2 ", "regression: {alpha: 0.01, min_ratio: 0.5} ")) == [
        f"{BAD}:26: rollback_contract.triggers[1].regression.min_ratio: must be at least 1 and at most 10 "
        "(1: any increase, 1.2: more than 20 % worse), got 0.5",
        f"{BAD}:27: rollback_contract.triggers[1].window: a regression test reads every analysis since the rollout "
        "began, not a window; remove window",
    ]


@pytest.mark.parametrize(("value", "given"), [("true", "true"), ("0.01", "0.01"), ("[0.01]", "a list")])
def test_a_regression_that_is_not_a_mapping_is_the_only_problem_reported(check: Check, value: str, given: str) -> None:
    # Not also "a window ... is required": a regression trigger has none.
    old = "above_baseline: 2    # p99 more than twice the baseline's\n      window: 5m\n"
    assert check(in_block(SLOW_TRIGGER, old, f"regression: {value}\n")) == [
        f"{BAD}:26: rollback_contract.triggers[1].regression: a mapping of keys to values is required, got {given}"
    ]


def test_bursts_on_a_latency_regression_test(check: Check) -> None:
    old = "above_baseline: 2    # p99 more than twice the baseline's\n      window: 5m\n"
    assert check(in_block(SLOW_TRIGGER, old, "regression: {alpha: 0.01, bursts: tolerate}\n")) == [
        f"{BAD}:26: rollback_contract.triggers[1].regression.bursts: latency_p99 is a latency metric; bursts applies "
        "to error_rate and ratio metrics: remove it"
    ]


def test_bursts_tolerated_on_an_error_rate_regression_test(check: Check) -> None:
    old = "above: 0.01          # more than 1% of requests fail\n      window: 5m\n"
    assert check(in_block(ERRORS_TRIGGER, old, "regression: {alpha: 0.01, bursts: tolerate}\n")) == []


def test_two_triggers_with_one_name(check: Check) -> None:
    assert check(in_block(SLOW_TRIGGER, "name: slow", "name: errors")) == [
        f"{BAD}:24: rollback_contract.triggers[1].name: 'errors' is already the name of triggers[0]; "
        "names must be unique"
    ]


@pytest.mark.parametrize(
    ("triggers", "line", "missing", "hint"),
    [
        ((ERRORS_TRIGGER, ERROR_REGRESSION), 18, "error_rate", "add a trigger on error_rate"),
        ((SLOW_TRIGGER, LATENCY_REGRESSION), 18, "latency", "add a trigger on latency_p99"),
        ((COMPLAINTS_TRIGGER,), 18, "customer_complaint", "add a trigger with signal: customer_complaint"),
    ],
    ids=["error_rate", "latency", "customer_complaint"],
)
def test_a_contract_leaving_a_required_metric_or_signal_uncovered(
    check: Check, triggers: tuple[str, ...], line: int, missing: str, hint: str
) -> None:
    # A regression trigger on a metric covers it as a threshold trigger does: both must go.
    assert check(*(removed(trigger) for trigger in triggers)) == [
        f"{BAD}:{line}: rollback_contract.triggers: the contract does not cover {missing}, "
        f"which shiprail.yaml contract.must_cover requires; {hint}"
    ]


def test_a_required_signal_the_policy_adds(check: Check, project: Path) -> None:
    edit_file(project, "shiprail.yaml", "must_cover: [error_rate,", "must_cover: [alert, error_rate,")
    assert check() == [
        f"{BAD}:18: rollback_contract.triggers: the contract does not cover alert, "
        "which shiprail.yaml contract.must_cover requires; add a trigger with signal: alert"
    ]


def test_a_required_metric_kind_the_service_does_not_define(check: Check, project: Path) -> None:
    edit_file(project, "shiprail.yaml", "must_cover: [error_rate,", "must_cover: [rate, error_rate,")
    assert check() == [
        f"{BAD}:18: rollback_contract.triggers: the contract does not cover rate, "
        "which shiprail.yaml contract.must_cover requires; "
        "services/checkout.yaml defines no rate metric; add one and a trigger on it"
    ]


def test_an_unknown_no_data_policy(check: Check) -> None:
    assert check(("on_no_data: pause", "on_no_data: wait")) == [
        f"{BAD}:41: rollback_contract.on_no_data: one of 'pause', 'rollback' is required, got 'wait'"
    ]


# ---------------------------------------------------------------------------- risk and stage


@pytest.mark.parametrize("risk", ["low", "medium"])
def test_risk_declared_below_what_the_tags_imply(check: Check, risk: str) -> None:
    assert check((RISK_COMMENT, f"risk: {risk}")) == [
        f"{BAD}:15: risk: {risk!r} is below the 'high' the tags imply (tag payments is high-risk in shiprail.yaml); "
        "raise it or change the tags"
    ]


@pytest.mark.parametrize("tag", ["Payments", "PAYMENTS", "' payments '", "Data_Migration", "data migration", "AUTH"])
def test_a_high_risk_tag_spelled_another_way_is_high_risk(check: Check, tag: str) -> None:
    # Spelled otherwise, a payments release was medium risk: one approval, no QA, no load test.
    assert check(("tags: [payments]", f"tags: [{tag}]"), removed(QA_CHECKLIST)) == [
        f"{BAD}:56: stage.qa_checklist: a high-risk release needs a QA checklist "
        "(shiprail.yaml gates.high.qa_checklist)"
    ]


def test_a_low_risk_tag_spelled_another_way_is_low_risk(check: Check) -> None:
    assert check(("tags: [payments]", "tags: [Docs]"), removed(QA_CHECKLIST), removed(LOAD_TEST)) == []


def test_an_unknown_risk_level(check: Check) -> None:
    assert check((RISK_COMMENT, "risk: extreme")) == [
        f"{BAD}:15: risk: one of 'low', 'medium', 'high' is required, got 'extreme'"
    ]


def test_a_high_risk_plan_without_a_qa_checklist(check: Check) -> None:
    assert check(removed(QA_CHECKLIST)) == [
        f"{BAD}:56: stage.qa_checklist: a high-risk release needs a QA checklist "
        "(shiprail.yaml gates.high.qa_checklist)"
    ]


def test_a_high_risk_plan_without_a_load_test(check: Check) -> None:
    assert check(removed(LOAD_TEST)) == [
        f"{BAD}:56: stage.load_test: a high-risk release needs a load test (shiprail.yaml gates.high.load_test)"
    ]


def test_a_high_risk_plan_without_a_stage(check: Check) -> None:
    stage_tests = """\
stage:
  tests:
    - name: unit
      command: pytest -q --junitxml=reports/unit.xml
      junit: reports/unit.xml
      timeout: 10m
"""
    assert check(removed(stage_tests + QA_CHECKLIST + LOAD_TEST)) == [
        f"{BAD}:2: stage.qa_checklist: a high-risk release needs a QA checklist "
        "(shiprail.yaml gates.high.qa_checklist)",
        f"{BAD}:2: stage.load_test: a high-risk release needs a load test (shiprail.yaml gates.high.load_test)",
    ]


def test_a_low_risk_plan_needs_no_qa_checklist_or_load_test(check: Check) -> None:
    assert check(("tags: [payments]", "tags: [docs]"), removed(QA_CHECKLIST), removed(LOAD_TEST)) == []


def test_a_plan_that_raises_its_risk_gets_the_higher_gates(check: Check) -> None:
    assert check(("tags: [payments]", "tags: [docs]"), (RISK_COMMENT, "risk: high"), removed(QA_CHECKLIST)) == [
        f"{BAD}:56: stage.qa_checklist: a high-risk release needs a QA checklist "
        "(shiprail.yaml gates.high.qa_checklist)"
    ]


def test_fewer_approvals_than_policy(check: Check) -> None:
    assert check(("  qa_checklist:\n", "  approvals: 1\n  qa_checklist:\n")) == [
        f"{BAD}:62: stage.approvals: 1 is below the 2 approvals shiprail.yaml requires for high risk; "
        "a plan may ask for more, never fewer"
    ]


def test_a_load_test_without_thresholds(check: Check) -> None:
    assert check(("thresholds: {p95_ms: 300, error_rate: 0.01, min_rps: 100}", "thresholds: {}")) == [
        f"{BAD}:72: stage.load_test.thresholds: at least one threshold is required (p95_ms, error_rate, min_rps); "
        "a load test without one can never fail"
    ]


# ----------------------------------------------------------------------------------- rollout


@pytest.mark.parametrize(
    ("step", "weight"),
    [
        ("    - {weight: 1, bake: 30m}\n", "1"),
        ("    - {weight: 10, bake: 2h}\n", "10"),
        ("    - {weight: 50, bake: 4h}\n", "50"),
        ("    - {weight: 100}\n", "100"),
    ],
)
def test_rollout_steps_that_skip_a_required_weight(check: Check, step: str, weight: str) -> None:
    assert check(removed(step)) == [
        f"{BAD}:75: rollout.steps: weight {weight} is missing; shiprail.yaml requires 1, 10, 50, 100 in order, "
        "and no release skips a step"
    ]


def test_rollout_steps_that_reorder_required_weights(check: Check) -> None:
    assert check(
        (
            "    - {weight: 10, bake: 2h}\n    - {weight: 50, bake: 4h}\n",
            "    - {weight: 50, bake: 4h}\n    - {weight: 10, bake: 2h}\n",
        )
    ) == [f"{BAD}:78: rollout.steps[2].weight: 10 comes after 50; weights must increase"]


def test_an_extra_step_between_required_weights_is_allowed(check: Check) -> None:
    extra = "    - {weight: 25, bake: 1h}\n    - {weight: 50, bake: 4h}\n"
    assert check(("    - {weight: 50, bake: 4h}\n", extra)) == []


@pytest.mark.parametrize(
    ("weight", "policy", "baked", "line"),
    [(1, "30m", "10m", 76), (10, "2h", "1h", 77), (50, "4h", "3h59m", 78)],
)
def test_a_bake_below_the_policy_minimum_for_the_risk(
    check: Check, weight: int, policy: str, baked: str, line: int
) -> None:
    edit = (f"{{weight: {weight}, bake: {policy}}}", f"{{weight: {weight}, bake: {baked}}}")
    assert check(edit) == [
        f"{BAD}:{line}: rollout.steps[{line - 76}].bake: "
        f"{baked} is below the {policy} shiprail.yaml requires at weight {weight} for high risk"
    ]


def test_the_minimum_bake_follows_the_risk(check: Check) -> None:
    low = ("tags: [payments]", "tags: [docs]")
    assert check(low, ("{weight: 10, bake: 2h}", "{weight: 10, bake: 30m}")) == []
    assert check(low, ("{weight: 10, bake: 2h}", "{weight: 10, bake: 29m}")) == [
        f"{BAD}:77: rollout.steps[1].bake: 29m is below the 30m shiprail.yaml requires at weight 10 for low risk"
    ]


@pytest.mark.parametrize("weight", ["0", "150"])
def test_a_weight_outside_zero_to_one_hundred(check: Check, weight: str) -> None:
    assert check(("{weight: 50, bake: 4h}", f"{{weight: {weight}, bake: 4h}}")) == [
        f"{BAD}:75: rollout.steps: weight 50 is missing; shiprail.yaml requires 1, 10, 50, 100 in order, "
        "and no release skips a step",
        f"{BAD}:78: rollout.steps[2].weight: a weight is a percentage in (0, 100], got {weight}",
    ]


def test_a_rollout_without_steps(check: Check) -> None:
    assert check((STEPS, "#\n#\n#\n#\n"), ("  steps:\n", "  steps: []\n")) == [
        f"{BAD}:75: rollout.steps: at least one step is required"
    ]


def test_a_plan_without_rollout_is_checked_against_its_service_defaults(check: Check, project: Path) -> None:
    edit_file(
        project,
        "services/checkout.yaml",
        "metrics:\n",
        "defaults:\n  rollout:\n    steps:\n      - {weight: 1, bake: 30m}\n      - {weight: 100}\nmetrics:\n",
    )
    assert check(removed("rollout:\n  steps:\n" + STEPS)) == [
        "services/checkout.yaml:18: defaults.rollout.steps: weight 10, 50 is missing; shiprail.yaml requires "
        "1, 10, 50, 100 in order, and no release skips a step"
    ]


# ------------------------------------------------------------------------------------ verify


def test_a_verify_window_below_policy(check: Check) -> None:
    assert check(("  window: 24h", "  window: 12h")) == [
        f"{BAD}:82: verify.window: 12h is below the 1d validation window shiprail.yaml requires"
    ]


def test_a_longer_verify_window_is_allowed(check: Check) -> None:
    assert check(("  window: 24h", "  window: 2d")) == []


def test_no_one_on_call(check: Check) -> None:
    assert check(removed("  on_call: bob\n")) == [
        f"{BAD}:81: verify.on_call: someone on call for the validation window is required"
    ]


@pytest.mark.parametrize(("person", "hint"), [("bobby", "; did you mean 'bob'?"), ("zed", "")])
def test_an_on_call_person_the_policy_does_not_know(check: Check, person: str, hint: str) -> None:
    assert check(("on_call: bob", f"on_call: {person}")) == [
        f"{BAD}:83: verify.on_call: {person!r} is not a person in shiprail.yaml; add them under people{hint}"
    ]


@pytest.mark.parametrize(
    ("person", "held"),
    [
        ("quinn", "qa"),  # QA signs off; it may not pause or roll back
        ("alice", "releaser"),  # the release's owner, who has no oncall role either
        ("carol", "approver"),
    ],
)
def test_an_on_call_person_without_the_oncall_role(check: Check, person: str, held: str) -> None:
    assert check(("on_call: bob", f"on_call: {person}")) == [
        f"{BAD}:83: verify.on_call: {person} cannot be on call: that needs the role oncall in shiprail.yaml, and "
        f"{person} has {held}; name someone who has it (bob), or give {person} the role"
    ]


def test_an_on_call_person_with_no_role_when_nobody_has_the_oncall_role(check: Check, project: Path) -> None:
    edit_file(project, "shiprail.yaml", "roles: [approver, oncall]", "roles: []")
    assert check() == [
        f"{BAD}:83: verify.on_call: bob cannot be on call: that needs the role oncall in shiprail.yaml, and bob has "
        "no role; nobody has it yet: give bob the role"
    ]


def test_an_on_call_person_with_the_oncall_role_among_others(check: Check) -> None:
    # bob is an approver too (the example policy): the oncall role is what counts.
    assert check(("on_call: bob", "on_call: bob")) == []


def test_no_verify_section(check: Check) -> None:
    verify = """\
verify:
  window: 24h
  on_call: bob
  probes:
    - name: checkout page
      url: http://127.0.0.1:8002/health
      expect_status: 200
      max_latency: 0.5
"""
    assert check(removed(verify)) == [f"{BAD}:2: verify: is required: the validation window and who is on call"]


def test_a_probe_without_an_http_url(check: Check) -> None:
    assert check(("url: http://127.0.0.1:8002/health", "url: 127.0.0.1:8002/health")) == [
        f"{BAD}:86: verify.probes[0].url: an http:// or https:// URL is required, got '127.0.0.1:8002/health'"
    ]


# ----------------------------------------------------------------------------- communication


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        pytest.param((COMMUNICATION, "communication: []\n" + "#\n" * 9), 45, id="empty-list"),
        pytest.param(removed(COMMUNICATION), 2, id="missing"),
    ],
)
def test_an_empty_communication_plan(check: Check, edit: Edit, line: int) -> None:
    assert check(edit) == [
        f"{BAD}:{line}: communication: a communication plan is required: at least one audience with channels and events"
    ]


@pytest.mark.parametrize(
    ("channel", "hint"),
    [
        ("status-pages", "; did you mean 'status-page'?"),
        ("pager", "; shiprail.yaml defines releases-slack, status-page, oncall-email"),
    ],
)
def test_a_channel_the_policy_does_not_define(check: Check, channel: str, hint: str) -> None:
    assert check(("notify: [status-page]", f"notify: [{channel}]")) == [
        f"{BAD}:50: communication[1].notify[0]: channel {channel!r} is not defined in shiprail.yaml channels{hint}"
    ]


def test_an_audience_without_channels(check: Check) -> None:
    assert check(("notify: [status-page]", "notify: []")) == [
        f"{BAD}:50: communication[1].notify: at least one channel is required"
    ]


def test_an_audience_without_events(check: Check) -> None:
    assert check(removed("    on: [started, rolled_back, completed]\n")) == [
        f"{BAD}:49: communication[1].on: at least one event is required"
    ]


def test_an_unknown_event(check: Check) -> None:
    assert check(("on: [started, rolled_back, completed]", "on: [started, rolledback, completed]")) == [
        f"{BAD}:51: communication[1].on[1]: one of 'awaiting_approval', 'approved', 'staging', 'started', 'step', "
        "'paused', 'rolled_back', 'override', 'verifying', 'completed', 'revert_stuck', 'revert_recovered', 'held', "
        "'handover', 'dry_run' is required, "
        "got 'rolledback'"
    ]


def test_on_is_a_key_not_a_boolean(check: Check, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # YAML 1.1 reads `on:` as True and `yes`/`no` as booleans; shiprail reads YAML 1.2.
    doc = parse_yaml("on: [started]\nnotify: [yes, no, off]\nflag: true\n", "x.yaml")
    assert doc.data == {"on": ["started"], "notify": ["yes", "no", "off"], "flag": True}
    monkeypatch.chdir(project)
    checked = check_plan_file(project / EXAMPLE)
    assert checked.plan.communication is not None
    assert [c.on for c in checked.plan.communication] == [
        ["approved", "started", "step", "paused", "rolled_back", "override", "completed", "held"],
        ["started", "rolled_back", "completed"],
        ["started", "rolled_back", "verifying", "handover"],
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # "Billion laughs": 377 bytes of nested aliases standing for 3.5 billion values.
        (
            "a: &a [l,l,l,l,l,l,l,l,l]\n"
            + "".join(
                f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefghi", "bcdefghij", strict=True)
            ),
            None,
            "its aliases expand to more than 2,000,000 values; write it out",
        ),
        ("owner: a\x07b\n", 1, "control character U+0007 is not allowed; remove it"),
        # A line separator pasted into a comment: YAML 1.1 would break the line there.
        (
            "service: x\n# a\u2028b: c\nowner: a\n",
            2,
            "U+2028 is read by YAML as a line break that editors do not show; remove it",
        ),
        (
            "service: x\nowner: 'a\x85b'\n",
            2,
            "U+0085 is read by YAML as a line break that editors do not show; remove it",
        ),
        ("service: x\nowner: " + "[" * 500 + "]" * 500 + "\n", None, "nested too deeply to be a shiprail file"),
    ],
)
def test_files_that_would_hang_or_crash_the_reader_are_refused(text: str, line: int | None, message: str) -> None:
    with pytest.raises(PlanInvalid) as refused:
        parse_yaml(text, "x.yaml")
    assert [(p.line, p.message) for p in refused.value.problems] == [(line, message)]


def test_a_key_that_is_not_text_is_named_at_its_mapping(check: Check) -> None:
    assert check(("  user_facing: true\n", "  user_facing: true\n  true: x\n")) == [
        f"{BAD}:7: scope: the key true is not text; quote it or remove it"
    ]


def test_a_key_that_overrides_a_merged_one_is_not_a_duplicate() -> None:
    doc = parse_yaml("base: &b {a: 1, c: 2}\nitem:\n  <<: *b\n  a: 3\n", "x.yaml")
    assert (doc.data["item"], doc.problems) == ({"a": 3, "c": 2}, [])
    twice = parse_yaml("item:\n  a: 1\n  a: 3\n", "x.yaml")
    assert [str(p) for p in twice.problems] == ["x.yaml:3: item.a: duplicate key (first given on line 2); keep one"]


# ------------------------------------------------------------------------- people and service


@pytest.mark.parametrize(("name", "hint"), [("chekout", "; did you mean 'checkout'?"), ("billing", "")])
def test_a_service_file_that_does_not_exist(check: Check, name: str, hint: str) -> None:
    assert check(("service: checkout", f"service: {name}")) == [
        f"{BAD}:2: service: no service file services/{name}.yaml; create it or fix the name{hint}"
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ('""', "is required; it is empty"),
        (
            "/tmp/evil",
            "'/tmp/evil' is not a service name: it names services/<service>.yaml, so it cannot start with a dot or "
            "hold / \\ : or ..",
        ),
        (
            "../shiprail",
            "'../shiprail' is not a service name: it names services/<service>.yaml, so it cannot start with a dot or "
            "hold / \\ : or ..",
        ),
    ],
)
def test_a_service_that_is_empty_or_a_path_is_refused_and_never_read(check: Check, name: str, message: str) -> None:
    # ../shiprail would read shiprail.yaml as a service file, /tmp/evil a file outside the project.
    assert check(("service: checkout", f"service: {name}")) == [f"{BAD}:2: service: {message}"]


@pytest.mark.parametrize("value", ["yes", '"off"', "1"])
def test_a_boolean_is_true_or_false_only(check: Check, value: str) -> None:
    shown = {"yes": "'yes'", '"off"': "'off'", "1": "1"}[value]
    assert check(("user_facing: true", f"user_facing: {value}")) == [
        f"{BAD}:9: scope.user_facing: true or false is required, got {shown}"
    ]


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "p95_ms: 300",
            "p95_ms: -300",
            72,
            "stage.load_test.thresholds.p95_ms: -300 can never pass; give a limit above 0",
        ),
        (
            "spawn_rate: 10",
            "spawn_rate: -10",
            70,
            "stage.load_test.spawn_rate: users started per second must be above 0, got -10",
        ),
        ("timeout: 10m", "timeout: 0s", 61, "stage.tests[0].timeout: must be longer than 0s"),
        (
            "expect_status: 200",
            "expect_status: 999",
            87,
            "verify.probes[0].expect_status: an HTTP status is 100 to 599, got 999; no response can have it",
        ),
        (
            "max_latency: 0.5",
            "max_latency: -0.5",
            88,
            "verify.probes[0].max_latency: -0.5 can never pass; give seconds above 0",
        ),
    ],
)
def test_values_that_could_never_pass_are_refused(check: Check, old: str, new: str, line: int, message: str) -> None:
    assert check((old, new)) == [f"{BAD}:{line}: {message}"]


def test_an_owner_the_policy_does_not_know(check: Check) -> None:
    assert check(("owner: alice", "owner: alise")) == [
        f"{BAD}:5: owner: 'alise' is not a person in shiprail.yaml; add them under people; did you mean 'alice'?"
    ]


def test_a_version_equal_to_its_baseline(check: Check) -> None:
    assert check(('version: "2.4.0"', 'version: "2.3.1"')) == [
        f"{BAD}:3: version: is the same as the baseline (2.3.1); a release changes the version"
    ]


@pytest.mark.parametrize("key", ["service", "version", "baseline", "owner"])
def test_a_missing_required_field(check: Check, key: str) -> None:
    lines = {
        "service": "service: checkout\n",
        "version": 'version: "2.4.0"\n',
        "baseline": 'baseline: "2.3.1"\n',
        "owner": "owner: alice\n",
    }
    problems = check(removed(lines[key]))
    # A missing key has no line of its own: the problem names the document's first line
    # (line 2 of the example, line 3 once line 2 is commented out).
    line = 3 if key == "service" else 2
    assert problems == [f"{BAD}:{line}: {key}: is required"]


def test_a_boolean_field_given_text(check: Check) -> None:
    assert check(("user_facing: true", "user_facing: maybe")) == [
        f"{BAD}:9: scope.user_facing: true or false is required, got 'maybe'"
    ]


# ----------------------------------------------------------------------- keys and YAML syntax


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "message"),
    [
        ("owner: alice\n", "owner: alice\nowners: bob\n", 6, "owners", "unknown key 'owners'; did you mean 'owner'?"),
        (
            "min_samples: 200",
            "min_sample: 200",
            23,
            "rollback_contract.triggers[0].min_sample",
            "unknown key 'min_sample'; did you mean 'min_samples'?",
        ),
        ("p95_ms: 300", "p95: 300", 72, "stage.load_test.thresholds.p95", "unknown key 'p95'; did you mean 'p95_ms'?"),
        (
            "    notify: [status-page]",
            "    notfy: [status-page]",
            50,
            "communication[1].notfy",
            "unknown key 'notfy'; did you mean 'notify'?",
        ),
        (
            "owner: alice\n",
            "owner: alice\nzzz: 1\n",
            6,
            "zzz",
            "unknown key 'zzz'; known keys: service, version, baseline, owner, scope, risk, rollback_contract, "
            "communication, stage, rollout, verify",
        ),
    ],
    ids=["top-level", "trigger", "thresholds", "communication", "no-close-match"],
)
def test_an_unknown_key_anywhere(check: Check, old: str, new: str, line: int, path: str, message: str) -> None:
    assert check((old, new)) == [f"{BAD}:{line}: {path}: {message}"]


def test_a_misspelt_required_key_reports_the_spelling_and_what_is_missing(check: Check) -> None:
    # The misspelt key also leaves nobody on call: both are true, and both say what to do.
    assert check(("  on_call: bob", "  oncall: bob")) == [
        f"{BAD}:81: verify.on_call: someone on call for the validation window is required",
        f"{BAD}:83: verify.oncall: unknown key 'oncall'; did you mean 'on_call'?",
    ]


def test_a_duplicate_key(check: Check) -> None:
    assert check(("min_samples: 200", "min_samples: 200\n      min_samples: 300")) == [
        f"{BAD}:24: rollback_contract.triggers[0].min_samples: duplicate key (first given on line 23); keep one"
    ]


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("on_no_data: pause", "on_no_data: [pause", 42, "YAML syntax error: expected ',' or ']', but got ':'"),
        (
            "      min_samples: 200",
            "     min_samples: 200",
            23,
            "YAML syntax error: expected <block end>, but found '<block mapping start>' (check the indentation)",
        ),
        (
            "      min_samples: 200",
            "\tmin_samples: 200",
            23,
            "YAML syntax error: found character '\\t' that cannot start any token",
        ),
    ],
    ids=["unclosed-list", "indentation", "tab"],
)
def test_a_yaml_syntax_error_names_the_line(check: Check, old: str, new: str, line: int, message: str) -> None:
    assert check((old, new)) == [f"{BAD}:{line}: {message}"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", f"{BAD}:1: the file is empty; see `shiprail init` for an example"),
        ("# only a comment\n", f"{BAD}:1: the file is empty; see `shiprail init` for an example"),
        ("- service: checkout\n", f"{BAD}:1: the file must be a mapping of keys to values"),
    ],
)
def test_a_file_that_is_not_a_plan(project: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str) -> None:
    monkeypatch.chdir(project)
    (project / BAD).write_text(text, encoding="utf-8")
    with pytest.raises(PlanInvalid) as exc:
        check_plan_file(project / BAD)
    assert [str(p) for p in exc.value.problems] == [problem]


def test_a_missing_plan_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    with pytest.raises(PlanInvalid) as exc:
        check_plan_file(project / "releases" / "nope.yaml")
    assert [str(p) for p in exc.value.problems] == ["releases/nope.yaml: file not found"]


def test_a_plan_that_is_not_utf8_text(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    (project / "releases" / "latin1.yaml").write_bytes("summary: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PlanInvalid) as exc:
        check_plan_file(project / "releases" / "latin1.yaml")
    assert [str(p) for p in exc.value.problems] == [
        "releases/latin1.yaml: is not UTF-8 text (byte 0xe9 at offset 12); save it as UTF-8"
    ]


def test_a_regression_test_on_a_count_metric(project: Path, check: Check) -> None:
    service = project / "services" / "checkout.yaml"
    service.write_text(
        service.read_text() + "  orders:\n    kind: count\n    query: sum(increase(orders_total[{{window}}]))\n"
    )
    old = "metric: latency_p99\n      above_baseline: 2    # p99 more than twice the baseline's\n      window: 5m\n"
    # Without the example's latency regression too, nothing covers latency any more.
    new = "metric: orders\n      regression: {alpha: 0.01}\n"
    assert check(in_block(SLOW_TRIGGER, old, new), removed(LATENCY_REGRESSION)) == [
        f"{BAD}:18: rollback_contract.triggers: the contract does not cover latency, which shiprail.yaml "
        "contract.must_cover requires; add a trigger on latency_p99",
        f"{BAD}:26: rollback_contract.triggers[1].regression: orders is a count metric; "
        "the regression test compares error_rate, ratio and latency metrics",
    ]


def test_a_regression_test_on_prometheus_needs_counts_or_buckets(project: Path, check: Check) -> None:
    service = project / "services" / "checkout.yaml"
    text = service.read_text()
    start = text.index("    # The requests behind the rate")
    end = text.index("  latency_p99:")
    service.write_text(text[:start] + text[end:])
    old = "above: 0.01          # more than 1% of requests fail\n      window: 5m\n"
    assert check(in_block(ERRORS_TRIGGER, old, "regression: {alpha: 0.01}\n")) == [
        f"{BAD}:21: rollback_contract.triggers[0].regression: error_rate: the regression test needs request counts; "
        "give the metric a count_query in services/checkout.yaml",
        f"{BAD}:36: rollback_contract.triggers[3].regression: error_rate: the regression test needs request counts; "
        "give the metric a count_query in services/checkout.yaml",
    ]
