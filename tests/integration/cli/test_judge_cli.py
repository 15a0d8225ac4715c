"""``shiprail judge`` run in-process: recorded counts judged, exit codes, JSON, and refused input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADER = "time,canary_requests,canary_events,baseline_requests,baseline_events\n"
HEALTHY = HEADER + "12:01,1000,1,9000,9\n12:02,2000,2,18000,19\n12:03,3000,3,27000,28\n"
# Five times the baseline's error rate from the second minute on.
REGRESSION = HEADER + "12:01,1000,1,9000,9\n12:02,2000,6,18000,18\n12:03,3000,16,27000,27\n12:04,4000,21,36000,36\n"
LATENCY = "version,0.1,0.5,+Inf\ncanary,80,99,100\nbaseline,720,895,900\n"


def write(project: Path, name: str, text: str) -> str:
    path = project / name
    path.write_text(text, encoding="utf-8")
    return name


def test_a_healthy_canary_is_not_rolled_back_and_exits_0(shiprail: Any, project: Path) -> None:
    code, out, err = shiprail("judge", write(project, "healthy.csv", HEALTHY))
    assert (code, err) == (0, "")
    # It said "no regression shown after 3 analyses: no regression shown yet: …", twice the same.
    [last] = [line for line in out.splitlines() if "after 3 analyses" in line]
    assert last.startswith("no rollback after 3 analyses: no regression shown yet: canary ")
    assert not (project / ".shiprail").exists()  # nothing stored: judging recorded counts changes nothing


def test_a_regression_is_rolled_back_at_its_analysis_and_exits_1(shiprail: Any, project: Path) -> None:
    code, out, _ = shiprail("judge", write(project, "bad.csv", REGRESSION))
    assert code == 1
    assert "rolled back at analysis 3 (12:03): canary worse than baseline" in out
    assert "; 1 later analysis not judged (the release would have rolled back)" in out


def test_json_gives_each_verdict_and_where_it_rolled_back(shiprail: Any, project: Path) -> None:
    result = shiprail("judge", write(project, "bad.csv", REGRESSION), "--json", "--alpha", "0.05")
    assert result.code == 1
    data = result.json()
    assert (data["kind"], data["alpha"], data["analyses"], data["judged"]) == ("error_rate", 0.05, 4, 3)
    assert data["rolled_back_at"] == {"analysis": 3, "time": "12:03"}
    assert [(v["analysis"], v["where"], v["decision"]) for v in data["verdicts"]] == [
        (1, "bad.csv:2", "continue"),
        (2, "bad.csv:3", "continue"),
        (3, "bad.csv:4", "fail"),
    ]
    assert data["trigger"] is None


def test_a_stricter_alpha_or_a_tolerance_waits_for_more_evidence(shiprail: Any, project: Path) -> None:
    name = write(project, "bad.csv", REGRESSION)
    assert shiprail("judge", name, "--json", "--alpha", "0.05").json()["rolled_back_at"]["analysis"] == 3
    assert shiprail("judge", name, "--json", "--min-ratio", "8").json()["rolled_back_at"] is None


# A count no float can hold (JSON integers have no limit).
HUGE = json.dumps(
    {
        "analyses": [
            {
                "at": "a1",
                "results": [
                    {
                        "trigger": "t",
                        "increment": {
                            "canary_requests": 10**400,
                            "baseline_requests": 100,
                            "canary_events": 1,
                            "baseline_events": 1,
                        },
                    }
                ],
            }
        ]
    }
)


def test_bad_flags_and_files_are_refused_in_one_sentence_with_exit_2(shiprail: Any, project: Path) -> None:
    rates = write(project, "healthy.csv", HEALTHY)
    latency = write(project, "latency.csv", LATENCY)
    cases = [
        (("judge", rates, "--alpha", "0.7"), "error: --alpha must be more than 0 and at most 0.5"),
        (("judge", rates, "--min-ratio", "0.5"), "error: --min-ratio must be at least 1 and at most 10"),
        (("judge", rates, "--alpha", "nan"), "error: --alpha must be more than 0 and at most 0.5 (a false-rollback"),
        (("judge", rates, "--min-ratio", "inf"), "error: --min-ratio must be at least 1 and at most 10 (1: any"),
        (
            ("judge", write(project, "huge.json", HUGE)),
            "error: huge.json: analysis 1, trigger 't': the increment is not as shiprail writes it",
        ),
        (("judge", rates, "--bursts", "often"), "error: --bursts must be independent or tolerate, got 'often'"),
        (("judge", latency, "--bursts", "tolerate"), "error: --bursts tolerate applies to rates; latency.csv holds"),
        (
            ("judge", "missing.csv"),
            "error: missing.csv: no such file; give a CSV file of counts or a package's rollout.json",
        ),
        (("judge", write(project, "x.csv", "a,b\n1,2\n")), "error: x.csv:1: the header needs the columns"),
        (("judge", "releases"), "error: releases: is a directory; give a file\n"),
    ]
    for args, start in cases:
        code, out, err = shiprail(*args)
        assert (code, out) == (2, ""), args
        assert err.startswith(start), err
        assert err.count("\n") == 1 and "Traceback" not in err


def package(project: Path, plan: str | None) -> str:
    """A package directory with a hand-made rollout.json (three analyses of 5× errors) and, if given, its plan."""
    pkg = project / "pkg"
    pkg.mkdir()
    increment = {"canary_requests": 1000, "baseline_requests": 9000, "canary_events": 5, "baseline_events": 9}
    rows = [{"trigger": "errors", "verdict": "pass", "increment": increment}]
    analyses = [{"at": f"t{i}", "results": rows} for i in (1, 2, 3)]
    (pkg / "rollout.json").write_text(json.dumps({"analyses": analyses}), encoding="utf-8")
    if plan is not None:
        (pkg / "plan.resolved.json").write_text(plan, encoding="utf-8")
    return "pkg/rollout.json"


def plan_with(regression: dict[str, Any], consecutive: int | None = None) -> str:
    trigger: dict[str, Any] = {"name": "errors", "metric": "error_rate", "regression": regression}
    if consecutive:
        trigger["consecutive"] = consecutive
    return json.dumps({"contract": {"triggers": [trigger]}})


def test_a_package_is_judged_with_its_trigger_s_settings_and_says_where_they_came_from(
    shiprail: Any, project: Path
) -> None:
    rollout = package(project, plan_with({"alpha": 0.05}))
    result = shiprail("judge", rollout, "--json")
    data = result.json()
    assert (result.code, data["trigger"], data["alpha"], data["rolled_back_at"]) == (
        1,
        "errors",
        0.05,
        {"analysis": 2, "time": "t2"},
    )
    assert data["settings_from"] == "the trigger's, from pkg/plan.resolved.json"
    code, out, _ = shiprail("judge", rollout, "--alpha", "0.0001")
    assert code == 0
    assert out.startswith(
        "errors, from pkg/rollout.json: alpha 0.0001, min_ratio 1, bursts independent "
        "(the trigger's, from pkg/plan.resolved.json; --alpha from the command line)"
    )


def test_a_package_s_consecutive_holds_the_rollback_until_that_many_fails_in_a_row(
    shiprail: Any, project: Path
) -> None:
    rollout = package(project, plan_with({"alpha": 0.05}, consecutive=2))
    result = shiprail("judge", rollout, "--json")
    assert (result.code, result.json()["rolled_back_at"]) == (1, {"analysis": 3, "time": "t3"})
    result = shiprail("judge", rollout, "--json", "--consecutive", "1")
    assert (result.code, result.json()["rolled_back_at"]) == (1, {"analysis": 2, "time": "t2"})
    # A CSV file takes it from the flag alone; the regression fails at 12:03, then once more at 12:04.
    result = shiprail("judge", write(project, "bad.csv", REGRESSION), "--json", "--consecutive", "2")
    assert result.json()["rolled_back_at"] == {"analysis": 4, "time": "12:04"}
    code, _, err = shiprail("judge", rollout, "--consecutive", "0")
    assert (code, err) == (2, "error: --consecutive must be at least 1 (failed analyses in a row), got 0\n")


def test_a_package_without_its_plan_uses_the_defaults_and_says_so(shiprail: Any, project: Path) -> None:
    data = shiprail("judge", package(project, None), "--json").json()
    assert data["alpha"] == 0.01
    assert data["settings_from"] == "pkg/plan.resolved.json not found: the defaults of regression: {}"


def test_a_package_whose_plan_is_unusable_is_refused_unless_every_setting_is_given(
    shiprail: Any, project: Path
) -> None:
    rollout = package(project, "{not json")
    code, out, err = shiprail("judge", rollout)
    assert (code, out) == (2, "")
    assert err == (
        "error: pkg/plan.resolved.json:1: not JSON (Expecting property name enclosed in double quotes), so not a "
        "resolved plan; give --alpha, --min-ratio, --bursts and --consecutive\n"
    )
    flags = ("--alpha", "0.05", "--min-ratio", "1", "--bursts", "independent", "--consecutive", "1")
    result = shiprail("judge", rollout, "--json", *flags)
    assert result.code == 1
    assert result.json()["settings_from"] == "pkg/plan.resolved.json unusable: all from the command line"


def test_trigger_on_a_csv_file_is_refused(shiprail: Any, project: Path) -> None:
    code, _, err = shiprail("judge", write(project, "healthy.csv", HEALTHY), "--trigger", "errors")
    assert code == 2
    assert err == (
        "error: --trigger applies to a release package's rollout.json; healthy.csv is a CSV file: remove it\n"
    )


def test_raw_counters_give_the_verdicts_of_counts_since_the_start_and_only_on_csv(shiprail: Any, project: Path) -> None:
    # REGRESSION on counters that had counted 5 M requests at 0.3 % errors before the rollout: read
    # as they are, the old traffic hides the regression; with --raw-counters it is rolled back as before.
    lines = REGRESSION.splitlines()
    raw = [lines[0], "12:00,500000,1500,4500000,13500"]
    for line in lines[1:]:
        t, nc, ec, nb, eb = line.split(",")
        raw.append(f"{t},{int(nc) + 500000},{int(ec) + 1500},{int(nb) + 4500000},{int(eb) + 13500}")
    name = write(project, "raw.csv", "\n".join(raw) + "\n")
    assert shiprail("judge", name, "--json").json()["rolled_back_at"] is None
    result = shiprail("judge", name, "--json", "--raw-counters")
    assert (result.code, result.json()["rolled_back_at"]) == (1, {"analysis": 3, "time": "12:03"})
    code, _, err = shiprail("judge", package(project, None), "--raw-counters")
    assert (code, err) == (
        2,
        "error: --raw-counters applies to a CSV file; pkg/rollout.json is a release package's: remove it\n",
    )


def test_a_package_s_unusable_settings_are_blamed_on_its_plan_not_on_flags(shiprail: Any, project: Path) -> None:
    rollout = package(project, plan_with({"alpha": 0.9}))
    code, _, err = shiprail("judge", rollout)
    assert (code, err) == (
        2,
        "error: pkg/plan.resolved.json: trigger 'errors' has regression alpha 0.9, but it must be more than 0 and "
        "at most 0.5 (a false-rollback rate, e.g. 0.01); give --alpha to replace it\n",
    )
    assert shiprail("judge", rollout, "--alpha", "0.05").code == 1  # the flag replaces it
    for consecutive in ("2.7", "-4", "1e400"):
        plan = plan_with({}).replace('"regression"', f'"consecutive": {consecutive}, "regression"')
        (project / "pkg" / "plan.resolved.json").write_text(plan, encoding="utf-8")
        code, _, err = shiprail("judge", rollout)
        assert code == 2 and err.startswith("error: pkg/plan.resolved.json: trigger 'errors' has consecutive "), err
        assert err.endswith(", not a whole number of at least 1; give --consecutive to replace it\n")


def test_malformed_packages_and_cells_are_refused_in_one_sentence(shiprail: Any, project: Path) -> None:
    cases = [
        ('{"analyses": [{"results": null}]}', "error: r.json: analysis 1: results is not a list of trigger results"),
        (
            '{"analyses": [{"results": [{"trigger": "t", "increment": '
            '{"canary_requests": 1e308, "baseline_requests": 1e308, "canary_events": 1e308}}]}]}',
            "error: r.json, analysis 1: canary_requests is more than 1e+15 (1e+308): a wrong column, not a count",
        ),
        (
            '{"analyses": [{"results": [{"trigger": "t", "increment": '
            '{"canary_requests": true, "baseline_requests": "100", "canary_events": 1}}]}]}',
            "error: r.json: analysis 1, trigger 't': the increment is not as shiprail writes it",
        ),
    ]
    for text, start in cases:
        code, out, err = shiprail("judge", write(project, "r.json", text))
        assert (code, out) == (2, ""), text
        assert err.startswith(start) and err.count("\n") == 1, err
    code, _, err = shiprail("judge", write(project, "u.csv", HEADER + "12:01,1_000,1,9000,9\n"))
    assert (code, err) == (2, "error: u.csv:2: canary_requests: '1_000' is not a count; write a number of at least 0\n")


def test_a_time_label_is_printed_as_written_not_as_markup(shiprail: Any, project: Path) -> None:
    code, out, _ = shiprail(
        "judge", write(project, "t.csv", HEADER + "[/],1000,1,9000,9\n[red]x[/red],2000,2,18000,19\n")
    )
    assert code == 0
    assert "[/]" in out and "[red]x[/red]" in out


def test_a_failure_short_of_consecutive_is_said_as_such(shiprail: Any, project: Path) -> None:
    # REGRESSION fails first at 12:03: cut after it, two in a row are not reached.
    name = write(project, "bad.csv", "\n".join(REGRESSION.splitlines()[:4]) + "\n")
    code, out, _ = shiprail("judge", name, "--consecutive", "2")
    assert code == 0
    assert "no rollback after 3 analyses: 1 failure in a row at the end, of the 2 it takes: canary worse" in out


def test_an_empty_or_mangled_rollout_json_is_told_what_a_package_holds_not_how_to_write_csv(
    shiprail: Any, project: Path
) -> None:
    advice = "give the rollout.json of a release package (shiprail release export)"
    for text in ("", "\n  \n", "\ufeff"):
        code, out, err = shiprail("judge", write(project, "rollout.json", text))
        assert (code, out, err) == (2, "", f"error: rollout.json: the file is empty; {advice}\n"), repr(text)
    code, out, err = shiprail("judge", write(project, "rollout.json", "analyses: []\n"))
    assert (code, out) == (2, "")
    assert err == "error: rollout.json:1: not JSON (Expecting value); give a release package's rollout.json\n"


def test_a_plan_that_is_not_json_says_so_with_its_line(shiprail: Any, project: Path) -> None:
    rollout = package(project, '{"contract": {"triggers": [\n  {"name": "errors",}\n]}}')
    code, out, err = shiprail("judge", rollout)
    assert (code, out) == (2, "")
    assert err == (
        "error: pkg/plan.resolved.json:2: not JSON (Expecting property name enclosed in double quotes), so not a "
        "resolved plan; give --alpha, --min-ratio, --bursts and --consecutive\n"
    )


def test_events_may_outnumber_requests_and_counts_may_be_fractional(shiprail: Any, project: Path) -> None:
    """Documented (docs/judges.md, docs/cli.md): a rate is any event count per request, and Prometheus'
    ``increase()`` gives fractional counts; neither is refused."""
    more = write(project, "more.csv", HEADER + "12:01,1000,2000,9000,9\n")
    assert shiprail("judge", more, "--json").json()["verdicts"][0]["decision"] == "fail"
    fractional = write(project, "fractional.csv", HEADER + "12:01,1.5,0,9000.25,9.5\n")
    assert shiprail("judge", fractional).code == 0
