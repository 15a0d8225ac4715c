"""JUnit XML reports: counting cases, naming the failing ones, the one-line summary."""

from __future__ import annotations

import pytest

from shiprail import defaults
from shiprail.checks.tests import FailedCase, JUnitError, JUnitReport, parse_junit, report_evidence, report_summary

# What pytest --junitxml writes (trimmed): one <testsuites> holding one <testsuite>.
PYTEST_REPORT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
  <testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="0.05">
    <testcase classname="test_cart" name="test_add" time="0.001" />
    <testcase classname="test_cart" name="test_total" time="0.002">
      <failure message="assert 3 == 4">def test_total():
&gt;       assert 1 + 2 == 4
E       assert 3 == 4</failure>
    </testcase>
    <testcase classname="test_cart" name="test_db" time="0.0">
      <error message="failed on setup with &quot;ConnectionRefusedError&quot;">fixture trace</error>
    </testcase>
    <testcase classname="test_cart" name="test_later" time="0.0">
      <skipped type="pytest.skip" message="not yet">skip reason</skipped>
    </testcase>
    <testcase classname="test_cart.TestCheckout" name="test_pay" time="0.01" />
  </testsuite>
</testsuites>
"""


def test_a_pytest_report_is_counted_and_its_failing_cases_named() -> None:
    report = parse_junit(PYTEST_REPORT)
    assert (report.passed, report.failed, report.errors, report.skipped) == (2, 1, 1, 1)
    assert report.total == 5
    assert not report.ok
    assert report.failing == (
        FailedCase("test_cart::test_total", "failure", "assert 3 == 4"),
        FailedCase("test_cart::test_db", "error", 'failed on setup with "ConnectionRefusedError"'),
    )


def test_a_testsuite_root_with_nested_suites_and_a_namespace_counts_every_case_once() -> None:
    report = parse_junit(
        b"""<testsuite xmlns="urn:x" name="all">
              <testsuite name="a"><testcase name="one"/><testcase name="two"/></testsuite>
              <testsuite name="b"><testsuite name="c"><testcase classname="C" name="three">
                <failure>boom happened
second line</failure></testcase></testsuite></testsuite>
            </testsuite>"""
    )
    assert (report.passed, report.failed, report.errors, report.skipped) == (2, 1, 0, 0)
    # No classname: the name alone; no message attribute: the first line of the text.
    assert report.failing == (FailedCase("C::three", "failure", "boom happened"),)


def test_a_case_with_a_failure_and_an_error_counts_once_as_failed() -> None:
    report = parse_junit(
        b'<testsuite><testcase name="t"><failure message="f"/><error message="e"/></testcase></testsuite>'
    )
    assert (report.failed, report.errors, report.total) == (1, 0, 1)
    assert report.failing[0].name == "t"


def test_long_messages_are_cut_to_one_line() -> None:
    long = "x" * (defaults.CHECK_MESSAGE_CHARS + 100)
    report = parse_junit(f'<testsuite><testcase name="t"><failure message="{long}"/></testcase></testsuite>'.encode())
    message = report.failing[0].message
    assert len(message) == defaults.CHECK_MESSAGE_CHARS
    assert message.endswith("…")


def test_a_failure_without_message_or_text_says_its_type() -> None:
    report = parse_junit(b'<testsuite><testcase name="t"><error type="TimeoutError"/></testcase></testsuite>')
    assert report.failing[0].message == "TimeoutError"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<testsuite><testcase>", "it is not well-formed XML"),
        (b"", "it is not well-formed XML"),
        (b"<coverage/>", "its root element is <coverage>, not <testsuites> or <testsuite>"),
    ],
)
def test_what_is_not_a_junit_report_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(JUnitError) as caught:
        parse_junit(data)
    assert str(caught.value).startswith(message)


def test_the_summary_is_one_line_naming_the_first_failing_cases() -> None:
    assert report_summary(parse_junit(PYTEST_REPORT), 3.14) == (
        "2 passed, 1 failed (test_cart::test_total), 1 error (test_cart::test_db), 1 skipped in 3.1 s"
    )
    many = JUnitReport(passed=12, failed=5, failing=tuple(FailedCase(f"m::t{i}", "failure", "") for i in range(5)))
    assert report_summary(many, 0.04) == "12 passed, 5 failed (m::t0, m::t1, m::t2 and 2 more) in 0.0 s"
    assert report_summary(JUnitReport(passed=12, skipped=2), 3.1) == "12 passed, 2 skipped in 3.1 s"
    assert report_summary(JUnitReport(), 1.0) == "no test cases in the report in 1.0 s"


def test_the_evidence_keeps_counts_and_at_most_the_first_failing_cases() -> None:
    n = defaults.CHECK_FAILURES_KEPT + 7
    report = JUnitReport(failed=n, failing=tuple(FailedCase(f"m::t{i}", "failure", "no") for i in range(n)))
    evidence = report_evidence(report)
    assert (evidence["failed"], evidence["failing_not_shown"]) == (n, 7)
    assert len(evidence["failing"]) == defaults.CHECK_FAILURES_KEPT
    assert evidence["failing"][0] == {"case": "m::t0", "outcome": "failure", "message": "no"}
