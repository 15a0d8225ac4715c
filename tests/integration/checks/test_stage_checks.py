"""Stage checks with real processes: pytest writing JUnit XML, headless Locust against a local HTTP
service, and ``shiprail release check`` recording them for the gates of ``release start``."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shiprail.checks.load_test import run_load_test
from shiprail.checks.tests import run_command, run_test
from shiprail.cli.context import open_store
from shiprail.schema.plan import LoadTest
from shiprail.schema.plan import TestCommand as Cmd  # not "Test…": pytest would try to collect it
from shiprail.store.models import CheckRun
from tests.integration.cli import conftest as cli
from tests.support.sample_service import SampleService

shiprail = cli.shiprail  # the in-process CLI fixture of tests/integration/cli

PYTEST = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider"
PLAN = "releases/checkout-2.4.0.yaml"

PASSING_SUITE = """
import os

def test_env_is_merged_over_the_environment():
    assert os.environ["SHIPRAIL_CHECK_FLAVOUR"] == "vanilla"
    assert "PATH" in os.environ

def test_adds():
    assert 1 + 1 == 2
"""

FAILING_SUITE = """
import pytest

def test_ok():
    assert True

def test_total():
    assert 1 + 2 == 4, "the total is off"

@pytest.mark.skip(reason="not yet")
def test_later():
    pass
"""

LOCUSTFILE = """
from locust import HttpUser, constant, task

class Shopper(HttpUser):
    wait_time = constant(0.02)

    @task
    def browse(self):
        self.client.get("/products")
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def gone(pid: int) -> bool:
    """The process has exited (a zombie no reaper has collected yet counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.is_file() and "\nState:\tZ" in status.read_text()


@pytest.fixture
def service() -> Iterator[SampleService]:
    with SampleService("2.4.0") as svc:
        yield svc


# ------------------------------------------------------------------------------ test commands


def test_pytest_suites_pass_and_fail_by_their_junit_reports(tmp_path: Path) -> None:
    write(tmp_path / "suite" / "test_good.py", PASSING_SUITE)
    write(tmp_path / "suite" / "test_bad.py", FAILING_SUITE)
    good = Cmd(
        name="good",
        command=f"{PYTEST} --junitxml=reports/good.xml test_good.py",
        cwd="suite",  # relative to the project root
        env={"SHIPRAIL_CHECK_FLAVOUR": "vanilla"},
        junit="reports/good.xml",  # relative to cwd
    )
    result = run_test(good, tmp_path)
    assert result.passed, result.summary
    assert (result.kind, result.name) == ("tests", "good")
    assert result.summary.startswith("2 passed in ")
    ev = result.evidence
    assert (ev["exit_code"], ev["timed_out"], ev["cwd"], ev["env"]) == (
        0,
        False,
        str((tmp_path / "suite").resolve()),
        ["SHIPRAIL_CHECK_FLAVOUR"],
    )
    assert ev["junit"]["path"] == str((tmp_path / "suite" / "reports" / "good.xml").resolve())
    assert len(ev["junit"]["sha256"]) == 64
    assert (ev["junit"]["passed"], ev["junit"]["failed"], ev["junit"]["failing"]) == (2, 0, [])
    assert "2 passed" in ev["stdout_tail"]
    json.dumps(ev)  # evidence is stored as JSON

    bad = Cmd(name="bad", command=f"{PYTEST} --junitxml=out.xml test_bad.py", cwd="suite", junit="out.xml")
    result = run_test(bad, tmp_path)
    assert not result.passed
    assert result.summary.startswith("1 passed, 1 failed (test_bad::test_total), 1 skipped in ")
    junit = result.evidence["junit"]
    assert (junit["passed"], junit["failed"], junit["errors"], junit["skipped"]) == (1, 1, 0, 1)
    [case] = junit["failing"]
    assert (case["case"], case["outcome"]) == ("test_bad::test_total", "failure")
    assert "the total is off" in case["message"]
    assert result.evidence["exit_code"] == 1


def test_a_command_over_its_timeout_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    # The shell starts a background sleep and waits: killing only the shell would leave it running.
    test = Cmd(name="slow", command="sleep 30 & echo $! > bg.pid; echo started; wait", timeout=1)
    started = time.monotonic()
    result = run_test(test, tmp_path)
    assert time.monotonic() - started < 8
    assert not result.passed
    assert result.summary == "timed out after 1s; its processes were killed (started)"
    assert result.evidence["timed_out"] is True
    deadline = time.monotonic() + 5
    pid = int((tmp_path / "bg.pid").read_text())
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_background_leftovers_of_a_finished_command_are_killed(tmp_path: Path) -> None:
    done = run_command("sleep 30 & echo $! > bg.pid", cwd=tmp_path, env=os.environ, timeout_s=10)
    assert (done.exit_code, done.timed_out) == (0, False)
    assert done.duration_s < 5  # a background child never makes a finished command look hung
    pid = int((tmp_path / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_a_command_whose_output_passes_the_cap_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    # `yes` writes hundreds of MB a second; before the cap it filled /tmp until its timeout. Here
    # it runs in the background, so killing only the shell would leave it writing.
    test = Cmd(name="chatty", command="yes shiprail & echo $! > bg.pid; wait", timeout=60)
    started = time.monotonic()
    result = run_test(test, tmp_path)
    assert time.monotonic() - started < 20
    cap = 64 * 1024 * 1024  # defaults.CHECK_OUTPUT_MAX_BYTES
    assert not result.passed
    assert re.fullmatch(
        r"its output passed the 64 MiB cap after \d+\.\d s; its processes were killed \([a-z]+\)", result.summary
    ), result.summary
    ev = result.evidence
    assert (ev["output_cap_bytes"], ev["timed_out"], ev["exit_code"]) == (cap, False, -9)
    assert ev["stdout_bytes"] > cap
    # The evidence keeps the last bytes, as for any run.
    assert ev["stdout_tail"].startswith(f"[… first {ev['stdout_bytes'] - 8192} bytes cut]\n")
    # Between the marker's line and the last (SIGKILL may land mid-write), whole lines of its output.
    assert set(ev["stdout_tail"].splitlines()[2:-1]) == {"shiprail"}
    pid = int((tmp_path / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_output_under_the_cap_is_not_cut_short(tmp_path: Path) -> None:
    done = run_command("head -c 300000 /dev/zero", cwd=tmp_path, env=os.environ, timeout_s=10, max_output_bytes=300000)
    assert (done.exit_code, done.output_cap, done.stdout_bytes) == (0, None, 300000)
    done = run_command(
        "head -c 300001 /dev/zero; sleep 30", cwd=tmp_path, env=os.environ, timeout_s=10, max_output_bytes=300000
    )
    assert (done.exit_code, done.output_cap, done.stdout_bytes, done.timed_out) == (-9, 300000, 300001, False)
    assert done.duration_s < 5


def test_a_timeout_without_output_and_a_signal_are_said_plainly(tmp_path: Path) -> None:
    result = run_test(Cmd(name="silent", command="sleep 30", timeout=1), tmp_path)
    assert result.summary == "timed out after 1s; its processes were killed"
    result = run_test(Cmd(name="oom", command="kill -KILL $$"), tmp_path)
    assert (result.passed, result.evidence["exit_code"]) == (False, -9)
    assert re.fullmatch(r"was killed by SIGKILL after \d+\.\d s", result.summary), result.summary
    result = run_test(Cmd(name="unit", command="kill -TERM $$", junit="r/u.xml"), tmp_path)
    assert re.fullmatch(
        r"junit report r/u.xml was not written; the command was killed by SIGTERM after \d+\.\d s", result.summary
    ), result.summary
    command = "mkdir -p r && echo '<testsuite><testcase name=\"t\"/></testsuite>' > r/u.xml && kill -SEGV $$"
    result = run_test(Cmd(name="cov", command=command, junit="r/u.xml"), tmp_path)
    assert re.fullmatch(r"1 passed in \d+\.\d s, but the command was killed by SIGSEGV", result.summary), result.summary


def test_a_missing_report_fails_even_when_an_old_one_was_left_behind(tmp_path: Path) -> None:
    # A passing report from an earlier run must not pass this one, which writes none.
    write(tmp_path / "reports" / "unit.xml", '<testsuite><testcase name="old"/></testsuite>')
    result = run_test(Cmd(name="unit", command="true", junit="reports/unit.xml"), tmp_path)
    assert not result.passed
    assert result.summary.startswith("junit report reports/unit.xml was not written; the command exited with 0 in ")
    assert "sha256" not in result.evidence["junit"]


def test_a_command_the_test_script_ran_that_crashed_is_named_by_its_signal(tmp_path: Path) -> None:
    result = run_test(Cmd(name="unit", command="sh -c 'kill -SEGV $$'; exit $?"), tmp_path)
    assert not result.passed
    assert result.summary.startswith("exited with 139 (a command it ran was killed by SIGSEGV) in ")
    assert result.evidence["exit_code"] == 139


def test_without_a_report_the_exit_code_decides_and_the_output_tail_is_kept(tmp_path: Path) -> None:
    result = run_test(Cmd(name="lint", command="yes line | head -5000; echo 'E501 too long' >&2; exit 3"), tmp_path)
    assert not result.passed
    assert result.summary.startswith("exited with 3 in ")
    assert result.summary.endswith(": E501 too long")
    ev = result.evidence
    assert ev["stdout_bytes"] == 5000 * 5
    assert ev["stdout_tail"].startswith(f"[… first {5000 * 5 - 8192} bytes cut]\n")
    assert ev["stderr_tail"] == "E501 too long\n"
    assert run_test(Cmd(name="ok", command="exit 0"), tmp_path).summary.startswith("passed (exit 0) in ")


def test_a_huge_report_is_read_in_little_memory(tmp_path: Path) -> None:
    # 400 cases, each with 100 KiB of captured output (as pytest -o junit_logging=all writes):
    # a 40 MiB report, which was read whole and parsed into a tree of several times its size.
    writer = (
        "import sys; w = sys.stdout.write; w('<testsuite>'); "
        "[w(f'<testcase classname=\"t\" name=\"c{i}\"><system-out>' + 'x' * 102400 + '</system-out>'"
        " + ('<failure message=\"boom\"/>' if i == 7 else '') + '</testcase>') for i in range(400)]; "
        "w('<system-err>' + 'y' * 102400 + '</system-err></testsuite>')"
    )
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(writer)} > big.xml"
    tracemalloc.start()
    try:
        result = run_test(Cmd(name="unit", command=command, junit="big.xml"), tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "big.xml").stat().st_size > 39 * 1024 * 1024
    assert re.fullmatch(r"399 passed, 1 failed \(t::c7\) in \d+\.\d s", result.summary), result.summary
    assert peak < 8 * 1024 * 1024, peak


def test_a_coloured_last_line_is_quoted_without_its_terminal_escapes(tmp_path: Path) -> None:
    # What pytest prints with FORCE_COLOR or --color=yes, plus a window-title escape and a line of
    # escapes alone after it: the summary quotes the words, the evidence keeps the bytes as printed.
    printed = (
        r"\033[32m1 passed\033[0m\n"
        r"\033[31mFAILED\033[0m test_x.py::test_y - \033]0;title\007assert 1 == 2\r\n"
        r"\033[0m\033[K\n"
    )
    result = run_test(Cmd(name="unit", command=f"printf '{printed}'; exit 1"), tmp_path)
    assert not result.passed
    assert re.fullmatch(r"exited with 1 in \d+\.\d s: FAILED test_x.py::test_y - assert 1 == 2", result.summary), (
        result.summary
    )
    assert result.evidence["stdout_tail"].startswith("\x1b[32m1 passed\x1b[0m\n")


def test_an_empty_report_of_a_failing_command_says_no_test_ran(tmp_path: Path) -> None:
    # pytest in a project without tests writes an empty report and exits 5: this said "no test
    # cases in the report in 1.9 s, but the command exited with 5", a "but" where both agree.
    command = "mkdir -p r && echo '<testsuites/>' > r/u.xml && exit 5"
    result = run_test(Cmd(name="unit", command=command, junit="r/u.xml"), tmp_path)
    assert not result.passed
    assert re.fullmatch(
        r"no test cases in the report in \d+\.\d s: no test ran, so none passed \(the command exited with 5\)",
        result.summary,
    ), result.summary


def test_a_clean_report_does_not_hide_a_failing_exit_code(tmp_path: Path) -> None:
    command = "mkdir -p r && echo '<testsuite><testcase name=\"t\"/></testsuite>' > r/u.xml && exit 2"
    result = run_test(Cmd(name="cov", command=command, junit="r/u.xml"), tmp_path)
    assert not result.passed
    assert result.summary.startswith("1 passed in ")
    assert result.summary.endswith(", but the command exited with 2")


@pytest.mark.parametrize(
    ("xml", "summary"),
    [
        ("<testsuites/>", "no test cases in the report in "),
        (
            '<testsuite><testcase name="a"><skipped/></testcase><testcase name="b"><skipped/></testcase></testsuite>',
            "0 passed, 2 skipped in ",
        ),
        (
            '<testsuite tests="3" failures="3"><testcase name="a"/></testsuite>',
            "1 passed, 3 more failed or errored by the suites' counts (no case listed) in ",
        ),
    ],
)
def test_a_report_where_no_test_ran_or_the_suite_counts_failures_does_not_pass(
    tmp_path: Path, xml: str, summary: str
) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "report.xml").write_text(xml)
    result = run_test(Cmd(name="unit", command="cp report.xml r/u.xml", junit="r/u.xml"), tmp_path)
    assert not result.passed
    assert result.summary.startswith(summary), result.summary


def test_a_missing_directory_fails_without_running(tmp_path: Path) -> None:
    result = run_test(Cmd(name="unit", command="true", cwd="nowhere"), tmp_path)
    assert (result.passed, result.summary) == (False, f"its directory nowhere ({tmp_path / 'nowhere'}) does not exist")


# ------------------------------------------------------------------------------ load tests


def load_test(host: str, **thresholds: float) -> LoadTest:
    return LoadTest(
        locustfile="load/shop.py",
        host=host,
        users=2,
        spawn_rate=2,
        duration=2,
        thresholds=thresholds,
    )


def test_a_headless_locust_run_within_its_thresholds_passes(tmp_path: Path, service: SampleService) -> None:
    write(tmp_path / "load" / "shop.py", LOCUSTFILE)
    artifacts = tmp_path / ".shiprail" / "checks" / "r1"
    # 4 s, not 2: on a loaded CI machine locust once made no request at all within 2 s.
    load = load_test(service.url, p95_ms=2000, error_rate=0.05, min_rps=1).model_copy(update={"duration": 4})
    result = run_load_test(load, tmp_path, artifacts)
    assert result.passed, result.summary
    assert (result.kind, result.name) == ("load_test", "load_test")
    ev = result.evidence
    assert ev["exit_code"] == 0
    assert ev["stats"]["requests"] > 20
    assert ev["stats"]["failures"] == 0
    assert [(t["threshold"], t["passed"]) for t in ev["threshold_results"]] == [
        ("p95_ms", True),
        ("error_rate", True),
        ("min_rps", True),
    ]
    assert ev["stats_csv"]["path"] == str(artifacts / "load_test_stats.csv")
    assert (artifacts / "load_test_stats.csv").is_file()
    assert "-t" in ev["command"] and "4s" in ev["command"]
    assert "error rate 0.00% <= 5.00%" in result.summary
    json.dumps(ev)


def test_a_locust_run_outside_its_thresholds_fails_and_says_which(tmp_path: Path, service: SampleService) -> None:
    write(tmp_path / "load" / "shop.py", LOCUSTFILE)
    service.inject(error_rate=0.5)
    load = load_test(service.url, p95_ms=5000, error_rate=0.05, min_rps=1_000_000)
    result = run_load_test(load, tmp_path, tmp_path / "artifacts")
    assert not result.passed
    # Failed requests do not make Locust's exit code fail the run: the thresholds judge them.
    assert result.evidence["exit_code"] == 0
    # Half the requests fail (deterministically); an odd count, or Locust's last-second CSV lag,
    # moves the measured rate a little off 50 %.
    assert re.match(r"2 of 3 thresholds failed: error rate (4[5-9]|5[0-5])\.\d\d% > 5\.00%; ", result.summary), (
        result.summary
    )
    assert "req/s < 1000000 req/s (held: p95 " in result.summary
    verdicts = {t["threshold"]: (t["passed"], t["limit"]) for t in result.evidence["threshold_results"]}
    assert verdicts == {"p95_ms": (True, 5000), "error_rate": (False, 0.05), "min_rps": (False, 1_000_000)}


def test_a_locust_run_that_cannot_start_fails_with_its_reason(tmp_path: Path) -> None:
    write(tmp_path / "load" / "shop.py", "this is not python\n")
    result = run_load_test(load_test("http://127.0.0.1:9", min_rps=1), tmp_path, tmp_path / "artifacts")
    assert not result.passed
    assert result.summary.startswith("locust exited with 1 after ")
    assert "stats" not in result.evidence
    missing = run_load_test(
        load_test("http://127.0.0.1:9", min_rps=1).model_copy(update={"locustfile": "load/none.py"}),
        tmp_path,
        tmp_path / "artifacts",
    )
    assert missing.summary == f"locustfile load/none.py does not exist ({tmp_path / 'load' / 'none.py'})"


def test_a_load_test_command_is_judged_by_the_csv_it_writes(tmp_path: Path) -> None:
    csv = "Type,Name,Request Count,Failure Count,Requests/s,95%%\\n,Aggregated,500,1,50.0,120\\n"
    load = LoadTest(
        command=f"mkdir -p reports && printf '{csv}' > reports/load_stats.csv",
        stats_csv="reports/load_stats.csv",
        duration=5,
        thresholds={"p95_ms": 100, "error_rate": 0.01},
    )
    result = run_load_test(load, tmp_path, tmp_path / "artifacts")
    assert (result.passed, result.summary) == (
        False,
        "1 of 2 thresholds failed: p95 120 ms > 100 ms (held: error rate 0.20% <= 1.00%); 500 requests, 1 failed",
    )
    assert result.evidence["mode"] == "command"
    assert len(result.evidence["stats_csv"]["sha256"]) == 64
    # A command that writes nothing fails, even with an old CSV left in place.
    quiet = load.model_copy(update={"command": "echo 'no server to load' >&2"})
    result = run_load_test(quiet, tmp_path, tmp_path / "artifacts")
    assert not result.passed
    assert result.summary.startswith("the load-test command wrote no stats CSV (load_stats.csv) in ")
    assert result.summary.endswith(": no server to load")


def test_a_load_test_command_shares_the_output_cap_and_names_a_signal(tmp_path: Path) -> None:
    load = LoadTest(command="yes load", stats_csv="reports/load_stats.csv", duration=30, thresholds={"p95_ms": 100})
    started = time.monotonic()
    result = run_load_test(load, tmp_path, tmp_path / "artifacts")
    assert time.monotonic() - started < 20  # not its 90 s timeout
    assert re.fullmatch(
        r"the load-test command was killed: its output passed the 64 MiB cap after \d+\.\d s: [a-z]+", result.summary
    ), result.summary
    assert (result.passed, result.evidence["output_cap_bytes"]) == (False, 64 * 1024 * 1024)
    killed = load.model_copy(update={"command": "kill -KILL $$"})
    result = run_load_test(killed, tmp_path, tmp_path / "artifacts")
    assert re.fullmatch(r"the load-test command was killed by SIGKILL after \d+\.\d s", result.summary), result.summary


# ------------------------------------------------------------------------------ shiprail release check


def approved_with_checks(shiprail: Any, host: str, *, load: bool = True) -> str:
    """A medium-risk release of the example plan whose stage has a pytest suite and a Locust run."""
    text = Path(PLAN).read_text().replace("tags: [payments]", "tags: [checkout]")
    stage = f"""\
stage:
  tests:
    - name: unit
      command: {PYTEST} --junitxml=reports/unit.xml
      cwd: suite
      junit: reports/unit.xml
      timeout: 2m
"""
    if load:
        stage += f"""\
  load_test:
    locustfile: load/shop.py
    host: {host}
    users: 2
    spawn_rate: 2
    duration: 2s
    thresholds: {{p95_ms: 2000, error_rate: 0.05, min_rps: 1}}
"""
    Path(PLAN).write_text(text[: text.index("stage:")] + stage + "\n" + text[text.index("rollout:") :])
    write(Path("load/shop.py"), LOCUSTFILE)
    code, out, err = shiprail("release", "create", PLAN, "--json", "--as", "alice")
    assert code == 0, err
    rid = str(json.loads(out)["id"])
    assert shiprail("release", "approve", rid, "--as", "bob").code == 0
    return rid


def check_runs(rid: str) -> list[CheckRun]:
    store = open_store(None, Path.cwd())
    try:
        with store.transaction() as s:
            rows = list(s.execute(select(CheckRun).where(CheckRun.release_id == rid).order_by(CheckRun.id)).scalars())
            s.expunge_all()
            return rows
    finally:
        store.close()


def start_gates(shiprail: Any, rid: str) -> dict[str, tuple[str, str]]:
    """The latest verdict and reason of each gate of ``start``."""
    gates = shiprail("release", "show", rid, "--json").json()["gates"]
    return {g["gate"]: (g["verdict"], g["reason"]) for g in gates if g["action"] == "start"}


def test_release_check_records_evidence_that_the_start_gates_read(shiprail: Any, service: SampleService) -> None:
    rid = approved_with_checks(shiprail, service.url)
    write(Path("suite/test_app.py"), FAILING_SUITE)

    # Checks run in staging only: nothing runs, nothing is recorded.
    code, _, err = shiprail("release", "check", rid, "--as", "alice")
    assert (code, err) == (
        1,
        f"error: release {rid} is planned; checks run in staging: stage it first (`shiprail release stage {rid}`)\n",
    )
    assert shiprail("release", "stage", rid, "--as", "alice").code == 0

    # Before any check ran, start is refused on missing evidence.
    code, _, err = shiprail("release", "start", rid, "--as", "alice")
    assert code == 1
    assert "gate tests failed (test 'unit' has not run)" in err
    assert start_gates(shiprail, rid)["load_test"] == ("fail", "the load test has not run")

    # A failing test: the check exits 1, names the failing case, and start stays refused.
    code, out, err = shiprail("release", "check", rid, "--only", "tests", "--as", "alice")
    assert code == 1, err
    assert "running test unit:" in err  # progress on stderr
    assert "test_app::test_total" in out
    assert "the total is off" in out
    code, _, err = shiprail("release", "start", rid, "--as", "alice")
    assert code == 1
    assert "gate tests failed (test 'unit' failed: 1 passed, 1 failed (test_app::test_total), 1 skipped in " in err

    # Fixed: every check passes, each is recorded with its evidence, and start goes through.
    write(Path("suite/test_app.py"), FAILING_SUITE.replace("1 + 2 == 4", "1 + 2 == 3"))
    code, out, err = shiprail("release", "check", rid, "--json", "--as", "alice")
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["ok"] is True
    assert [(c["kind"], c["name"], c["passed"]) for c in doc["checks"]] == [
        ("tests", "unit", True),
        ("load_test", "load_test", True),
    ]
    runs = check_runs(rid)
    assert [(r.kind, r.name, r.passed) for r in runs] == [
        ("tests", "unit", False),
        ("tests", "unit", True),
        ("load_test", "load_test", True),
    ]
    evidence = json.loads(runs[1].evidence)
    assert (evidence["junit"]["passed"], evidence["junit"]["skipped"]) == (2, 1)
    assert json.loads(runs[2].evidence)["stats"]["requests"] > 0
    assert (Path(".shiprail/checks") / rid / "load_test_stats.csv").is_file()

    code, out, err = shiprail("release", "start", rid, "--as", "alice")
    assert code == 0, err
    gates = start_gates(shiprail, rid)
    assert gates["tests"] == ("pass", "1 test command passed")
    assert gates["load_test"][0] == "pass"
    assert gates["load_test"][1].startswith("the load test passed: p95 ")

    # The release has moved on: checks are refused again (as JSON with --json).
    code, out, _ = shiprail("release", "check", rid, "--as", "alice", "--json")
    assert code == 1
    assert json.loads(out)["error"] == f"release {rid} is rolling_out (step 1); checks run in staging"


def test_a_check_whose_files_cannot_be_prepared_is_recorded_failed_and_the_others_still_run(
    shiprail: Any, service: SampleService
) -> None:
    rid = approved_with_checks(shiprail, service.url)
    assert shiprail("release", "stage", rid, "--as", "alice").code == 0
    write(Path(".shiprail/checks"), "a file where the checks' directory goes\n")

    code, out, err = shiprail("release", "check", rid, "--json", "--as", "alice")
    assert code == 1, err
    assert "Traceback" not in err
    checks = json.loads(out)["checks"]
    assert [(c["kind"], c["passed"]) for c in checks] == [("tests", False), ("load_test", False)]
    # The test ran (and failed on its own merits: no suite written); the load test could not.
    assert not checks[0]["summary"].startswith("shiprail could not run it")
    assert checks[1]["summary"] == (
        f"shiprail could not run it: {Path('.shiprail/checks').resolve() / rid}: Not a directory"
    )
    assert [(r.kind, r.passed) for r in check_runs(rid)] == [("tests", False), ("load_test", False)]


def test_release_check_input_errors_exit_2(shiprail: Any) -> None:
    rid = approved_with_checks(shiprail, "http://127.0.0.1:9", load=False)
    assert shiprail("release", "stage", rid, "--as", "alice").code == 0
    code, _, err = shiprail("release", "check", rid, "--only", "everything", "--as", "alice")
    assert code == 2
    assert "everything" in err
    code, _, err = shiprail("release", "check", rid)
    assert (code, err) == (2, "error: say who is acting with --as NAME or SHIPRAIL_USER\n")
    code, _, err = shiprail("release", "check", "nope", "--as", "alice")
    assert code == 2
    assert err.startswith("error: no release 'nope'")
    code, _, err = shiprail("release", "check", rid, "--only", "load_test", "--as", "alice")
    assert (code, err) == (2, f"error: release {rid} has no load test in its plan (stage.load_test)\n")
    code, _, err = shiprail("release", "check", rid, "--as", "nobody")
    assert code == 2
    assert err.startswith("error: 'nobody' is not a person in shiprail.yaml")
    assert check_runs(rid) == []
