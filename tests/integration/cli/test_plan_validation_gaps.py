"""``shiprail plan validate`` on inputs that used to pass, mislead or hang: one sentence each, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = "releases/checkout-2.4.0.yaml"
BAD = "releases/bad.yaml"
SERVICE = "services/checkout.yaml"


def write(project: Path, *edits: tuple[str, str], source: str = EXAMPLE, target: str = BAD) -> None:
    text = (project / source).read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} must occur exactly once in {source}"
        text = text.replace(old, new)
    (project / target).write_text(text, encoding="utf-8")


def refused(shiprail: Any, *args: str) -> list[str]:
    r = shiprail(*args)
    assert (r.code, r.out) == (2, ""), r.err
    assert "Traceback" not in r.err
    return list(r.err.splitlines())


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            ("command: pytest -q --junitxml=reports/unit.xml", 'command: "   "'),
            f"{BAD}:59: stage.tests[0].command: is empty; give the shell command that runs the tests "
            "(an empty one passes without testing)",
        ),
        (
            ("junit: reports/unit.xml", "junit: ''"),
            f"{BAD}:60: stage.tests[0].junit: is empty; give the path of the JUnit XML report the command writes, "
            "or remove junit",
        ),
        (
            ("- Pay with a new card and save it", "- Pay with a saved card"),
            f"{BAD}:64: stage.qa_checklist[1]: 'Pay with a saved card' is already qa_checklist[0]; remove the repeat",
        ),
        (
            ("host: http://127.0.0.1:8002", "host: nope"),
            f"{BAD}:68: stage.load_test.host: an http:// or https:// URL (Locust's --host) is required, got 'nope'",
        ),
        (
            ("users: 50", "users: 1e30"),
            f"{BAD}:69: stage.load_test.users: 1e+30 users is more than a load test can simulate; "
            "give at most 1,000,000",
        ),
        (
            ("above: 3 ", "above: 1e30 "),
            f"{BAD}:30: rollback_contract.triggers[2].above: a count above 1e+30 can never fire: no window gathers "
            "more than 1,000,000 customer_complaint signals; give a smaller count",
        ),
        (
            ("min_samples: 200", "min_samples: 1.0e+30"),
            f"{BAD}:23: rollback_contract.triggers[0].min_samples: 1e+30 can never fire: no window holds more than "
            "1e+15 samples (10⁵ requests a second for 300 years); give a smaller number",
        ),
        (
            ("min_samples: 200", "consecutive: 1e30"),
            f"{BAD}:23: rollback_contract.triggers[0].consecutive: 1e+30 can never fire: that many analyses in a "
            "row, one every 1m, take longer than 366d, the longest a step or validation window may last; "
            "give at most 527,040",
        ),
        (
            ("above: 0.01 ", "above: 1" + "0" * 400 + " "),
            f"{BAD}:21: rollback_contract.triggers[0].above: a 401-digit number is too large; give a smaller number",
        ),
        (
            ("above: 0.01 ", "above: 1e400 "),
            f"{BAD}:21: rollback_contract.triggers[0].above: 1e400 is too large; give a smaller number",
        ),
    ],
)
def test_a_plan_that_could_never_work_is_refused_in_one_line(
    shiprail: Any, project: Path, edit: tuple[str, str], problem: str
) -> None:
    write(project, edit)
    assert refused(shiprail, "plan", "validate", BAD) == [problem]


def test_a_blank_test_command_creates_no_release(shiprail: Any, project: Path) -> None:
    # Before, `release check` ran `sh -c ''`, which exits 0, and recorded the tests gate as passed.
    write(project, ("command: pytest -q --junitxml=reports/unit.xml", "command: ''"))
    assert refused(shiprail, "release", "create", BAD, "--as", "alice") == [
        f"{BAD}:59: stage.tests[0].command: is empty; give the shell command that runs the tests "
        "(an empty one passes without testing)"
    ]
    assert not (project / ".shiprail").exists()


def test_a_service_router_that_could_never_apply_a_weight(shiprail: Any, project: Path) -> None:
    text = (project / SERVICE).read_text(encoding="utf-8")
    nginx = text[text.index("router:") : text.index("provider:")]
    write(
        project,
        (nginx, "router:\n  type: command\n  set: '   '\n  get: ''\n  timeout: 0s\n\n"),
        source=SERVICE,
        target=SERVICE,
    )
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:7: router.set: is empty; give the shell command that applies SHIPRAIL_WEIGHT",
        f"{SERVICE}:8: router.get: is empty; give a shell command that prints the current weight, or remove get",
        f"{SERVICE}:9: router.timeout: must be longer than 0s",
    ]


def test_an_nginx_router_without_an_include_file(shiprail: Any, project: Path) -> None:
    write(
        project, ("include_file: /etc/nginx/shiprail/checkout.conf", "include_file: ''"), source=SERVICE, target=SERVICE
    )
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:7: router.include_file: is empty; give the path of the file shiprail writes the split into"
    ]


def test_a_latency_quantile_out_of_range_is_the_only_problem(shiprail: Any, project: Path) -> None:
    push = (
        "provider:\n  type: push\n\nmetrics:\n"
        "  error_rate:\n    kind: error_rate\n    counter: requests\n    errors: failures\n"
        "  latency_p99:\n    kind: latency\n    histogram: sdk_latency_seconds\n    quantile: 1.5\n"
    )
    text = (project / SERVICE).read_text(encoding="utf-8")
    (project / SERVICE).write_text(text[: text.index("provider:")] + push, encoding="utf-8")
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:23: metrics.latency_p99.quantile: must be at most 1, got 1.5"
    ]


def test_a_service_file_that_is_a_directory(shiprail: Any, project: Path) -> None:
    (project / "services" / "shop.yaml").mkdir()
    write(project, ("service: checkout", "service: shop"))
    assert refused(shiprail, "plan", "validate", BAD) == ["services/shop.yaml: is a directory; give a file"]


def test_a_policy_that_is_a_directory(shiprail: Any, project: Path) -> None:
    (project / "shiprail.yaml").unlink()
    (project / "shiprail.yaml").mkdir()
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        "error: shiprail.yaml is a directory, not a policy file; move it aside and run `shiprail init` to create one"
    ]


def test_a_fifo_as_the_plan_is_refused_without_waiting_on_it(project: Path) -> None:
    os.mkfifo(project / "releases" / "pipe.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("SHIPRAIL_DATABASE_URL", "SHIPRAIL_USER")}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "shiprail", "plan", "validate", "releases/pipe.yaml"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("plan validate waited on the FIFO for a writer")
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "releases/pipe.yaml: is not a regular file (a FIFO, socket or device); give a file\n",
    )


def test_more_approvals_than_people_who_may_approve_is_refused(shiprail: Any, project: Path) -> None:
    # shiprail init's policy: bob and carol approve, dana is an executive; alice owns the plan.
    write(project, ("stage:\n  tests:", "stage:\n  approvals: 4\n  tests:"))
    assert refused(shiprail, "plan", "validate", BAD) == [
        f"{BAD}:57: stage.approvals: 4 can never be given: shiprail.yaml has 3 people besides the owner who may "
        "approve (bob, carol, dana); ask for at most 3, or add approvers"
    ]
    write(project, ("stage:\n  tests:", "stage:\n  approvals: 3\n  tests:"))
    assert shiprail("plan", "validate", BAD).code == 0


def test_a_policy_asking_more_approvals_than_people_who_may_approve_is_refused(shiprail: Any, project: Path) -> None:
    # The plan asks for nothing itself: shiprail.yaml's count for its risk can never be met either.
    write(project, ("high:   {approvals: 2", "high:   {approvals: 4"), source="shiprail.yaml", target="shiprail.yaml")
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{EXAMPLE}:56: stage.approvals: 4 (what shiprail.yaml gates.high.approvals requires) can never be given: "
        "shiprail.yaml has 3 people besides the owner who may approve (bob, carol, dana); lower "
        "gates.high.approvals in shiprail.yaml to at most 3, or add approvers"
    ]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            ("- name: unit", "- name: '  '"),
            f"{BAD}:58: stage.tests[0].name: is empty; name the suite (gate evidence is listed by name)",
        ),
        (
            ("      timeout: 10m", "      timeout: 10m\n      cwd: ''"),
            f"{BAD}:62: stage.tests[0].cwd: is empty; give the directory to run in, or remove cwd",
        ),
        (
            ("spawn_rate: 10", "spawn_rate: 1e30"),
            f"{BAD}:70: stage.load_test.spawn_rate: 1e+30 users a second is more than a load test can start; "
            "give at most 1,000,000",
        ),
    ],
)
def test_a_blank_suite_name_or_directory_and_a_spawn_rate_beyond_reach(
    shiprail: Any, project: Path, edit: tuple[str, str], problem: str
) -> None:
    write(project, edit)
    assert refused(shiprail, "plan", "validate", BAD) == [problem]


@pytest.mark.parametrize(
    ("person", "problem"),
    [
        ("nobody-at-all", "'nobody-at-all' is not a person in shiprail.yaml; add them under people"),
        (
            "quinn",
            "quinn cannot be on call: that needs the role oncall in shiprail.yaml, and quinn has qa; name someone "
            "who has it (bob), or give quinn the role",
        ),
    ],
)
def test_the_on_call_person_a_service_default_names_is_checked_too(
    shiprail: Any, project: Path, person: str, problem: str
) -> None:
    service = project / SERVICE
    text = service.read_text(encoding="utf-8")
    service.write_text(text + f"\ndefaults:\n  verify:\n    on_call: {person}\n", encoding="utf-8")
    lines = len(text.splitlines())
    write(project, ("  on_call: bob\n", ""))
    assert refused(shiprail, "plan", "validate", BAD) == [f"{SERVICE}:{lines + 4}: defaults.verify.on_call: {problem}"]


def test_a_provider_url_no_query_could_reach(shiprail: Any, project: Path) -> None:
    # Each would fail every query of every analysis (inconclusive) and pause the release at 1 %.
    write(project, ("url: http://127.0.0.1:9090", "url: 127.0.0.1:9090"), source=SERVICE, target=SERVICE)
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:14: provider.url: an http:// or https:// URL is required, got '127.0.0.1:9090'"
    ]
    write(
        project,
        (
            "provider:\n  type: prometheus\n  url: 127.0.0.1:9090\n",
            "provider:\n  type: scrape\n  stable_url: http://127.0.0.1:8001/metrics\n"
            "  canary_url: localhost:8002/metrics\n",
        ),
        source=SERVICE,
        target=SERVICE,
    )
    canary = f"{SERVICE}:15: provider.canary_url: an http:// or https:// URL is required, got 'localhost:8002/metrics'"
    assert canary in refused(shiprail, "plan", "validate", EXAMPLE)


def test_a_provider_url_with_a_port_no_url_can_hold(shiprail: Any, project: Path) -> None:
    # plan validate took it, and every query failed (a ValueError, 'Port out of range 0-65535', out of the
    # web and scrape providers): the release paused at its first step.
    write(project, ("url: http://127.0.0.1:9090", "url: http://127.0.0.1:99090"), source=SERVICE, target=SERVICE)
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:14: provider.url: 'http://127.0.0.1:99090' names a port no URL can hold: give a number from 1 "
        "to 65535"
    ]


def test_a_prometheus_password_written_into_the_url(shiprail: Any, project: Path) -> None:
    # The service file is stored with every release, hashed into its approvals and exported in its package.
    write(
        project,
        ("url: http://127.0.0.1:9090", "url: http://admin:s3cret@127.0.0.1:9090"),
        source=SERVICE,
        target=SERVICE,
    )
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:14: provider.url: holds a password, which would be stored with every release, hashed into its "
        "approvals and exported in its package; give username: admin and password_env: the environment variable "
        "holding it where shiprail runs"
    ]


def test_an_nginx_server_address_with_a_port_no_tcp_port_can_have(shiprail: Any, project: Path) -> None:
    # nginx -T refused the include file at the release's first step: the rollout stalled at 1 %,
    # retrying a file nginx would never take, and the release could only be rolled back.
    write(project, ("canary: 127.0.0.1:8002", "canary: 127.0.0.1:80020"), source=SERVICE, target=SERVICE)
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:10: router.canary: port 80020 is not a TCP port (1 to 65535); nginx would refuse the include "
        "file at the first step"
    ]


@pytest.mark.parametrize(
    ("socket", "why"),
    [
        ("127.0.0.1:99999", "has port 99999, which no TCP port can have (1 to 65535)"),
        ("127.0.0.1:0", "has port 0, which no TCP port can have (1 to 65535)"),
        ("haproxy.internal:stats", "is neither a path nor host:port"),
    ],
)
def test_an_haproxy_socket_no_connection_can_reach(shiprail: Any, project: Path, socket: str, why: str) -> None:
    # As an nginx address with a port no TCP port can have: the controller failed at the release's
    # first step (an OverflowError for 99999, with a traceback), retrying with backoff while it lived.
    nginx = "\n".join(
        [
            "  type: nginx",
            "  include_file: /etc/nginx/shiprail/checkout.conf",
            "  upstream: checkout",
            "  stable: 127.0.0.1:8001",
            "  canary: 127.0.0.1:8002",
        ]
    )
    haproxy = f"  type: haproxy\n  socket: {socket}\n  backend: checkout\n  stable_server: s\n  canary_server: c"
    write(project, (nginx, haproxy), source=SERVICE, target=SERVICE)
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:7: router.socket: the HAProxy socket {socket!r} {why}; the controller could not reach its "
        "runtime API at the first step"
    ]


def test_a_web_path_written_as_jsonpath_is_refused_with_its_dotted_form(shiprail: Any, project: Path) -> None:
    # Argo Rollouts' web provider reads JSONPath: written here, the path named no key, every query
    # was no data, and the release paused for missing data at its first step.
    write(
        project,
        (
            "  type: prometheus\n  url: http://127.0.0.1:9090\n",
            "  type: web\n  url: http://127.0.0.1:9090/{{version}}\n",
        ),
        ("    kind: error_rate\n", "    kind: error_rate\n    path: '{$.data.errors.rate}'\n"),
        ("    kind: latency\n", "    kind: latency\n    path: $.latency[0].p99\n    count_path: data..requests\n"),
        source=SERVICE,
        target=SERVICE,
    )
    assert refused(shiprail, "plan", "validate", EXAMPLE) == [
        f"{SERVICE}:19: metrics.error_rate.path: '{{$.data.errors.rate}}' is JSONPath, which the web provider does "
        "not read; write the dotted path data.errors.rate",
        f"{SERVICE}:28: metrics.latency_p99.path: '$.latency[0].p99' is JSONPath, which the web provider does not "
        "read; write the dotted path latency.0.p99",
        f"{SERVICE}:29: metrics.latency_p99.count_path: 'data..requests' has an empty segment (a dot at its start, "
        "its end or twice); write e.g. data.errors.rate",
    ]


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("  headers_env:\n    X-Api-Key: api-77a0.s3cret-value\n", "provider.headers_env: X-Api-Key: the value"),
        ("  bearer_token_env: api-77a0.s3cret-value\n", "provider.bearer_token_env: the value"),
    ],
)
def test_a_secret_written_where_its_variable_is_named_is_not_printed(
    shiprail: Any, project: Path, key: str, where: str
) -> None:
    # It was quoted whole ("'api-77a0.s3cret-value' is not an environment variable's name") into the
    # terminal and CI log of whoever ran plan validate, as a password in a url was before.
    write(
        project,
        ("url: http://127.0.0.1:9090\n", "url: http://127.0.0.1:9090\n" + key),
        source=SERVICE,
        target=SERVICE,
    )
    problems = refused(shiprail, "plan", "validate", EXAMPLE)
    assert not any("s3cret" in line for line in problems), problems
    assert problems == [
        f"{SERVICE}:15: {where} is not an environment variable's name (letters, digits and _); give the variable "
        "holding the value where shiprail runs, never the value"
    ]
