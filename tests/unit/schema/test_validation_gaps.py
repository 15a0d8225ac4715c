"""Values that passed validation but could never work: blank commands, contracts that can never fire.

Each test edits the example plan (or service) of ``shiprail init`` and asserts the exact problem:
``file:line: field.path: message``. Line numbers are those of the example files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from shiprail.errors import ConfigError, PlanInvalid
from shiprail.project import check_plan_file, open_project
from shiprail.schema.base import SHOWN_IN_FULL_CHARS
from shiprail.schema.plan import MAX_LOAD_USERS, MAX_SIGNAL_ABOVE
from shiprail.schema.source import load_yaml, parse_yaml

EXAMPLE = "releases/checkout-2.4.0.yaml"
BAD = "releases/bad.yaml"
SERVICE = "services/checkout.yaml"
COMMAND = "command: pytest -q --junitxml=reports/unit.xml"  # line 59
ERRORS_ABOVE = "above: 0.01 "  # line 21
MIN_SAMPLES = "min_samples: 200"  # line 23
COMPLAINTS_ABOVE = "above: 3 "  # line 30
DIGITS_401 = "1" + "0" * 400

Check = Callable[..., list[str]]


@pytest.fixture
def check(project: Path, monkeypatch: pytest.MonkeyPatch) -> Check:
    """``check((old, new), ...)``: the example plan so edited, as ``releases/bad.yaml``; its problems."""
    monkeypatch.chdir(project)
    example = (project / EXAMPLE).read_text(encoding="utf-8")

    def run(*edits: tuple[str, str]) -> list[str]:
        text = example
        for old, new in edits:
            assert text.count(old) == 1, f"{old!r} must occur exactly once in the example plan"
            text = text.replace(old, new)
        (project / BAD).write_text(text, encoding="utf-8")
        try:
            check_plan_file(project / BAD)
        except PlanInvalid as exc:
            return [str(p) for p in exc.problems]
        return []

    return run


def service_problems(project: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> list[str]:
    monkeypatch.chdir(project)
    text = (project / SERVICE).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {SERVICE}"
    (project / SERVICE).write_text(text.replace(old, new), encoding="utf-8")
    service, _, problems = open_project(project).load_service("checkout")
    assert service is None
    return [str(p) for p in problems]


# ------------------------------------------------------------------------------ stage.tests


@pytest.mark.parametrize("blank", ["''", '"   "'])
def test_a_blank_test_command_is_refused(check: Check, blank: str) -> None:
    # `sh -c ''` exits 0: the tests gate would record a test that never ran as passed.
    assert check((COMMAND, f"command: {blank}")) == [
        f"{BAD}:59: stage.tests[0].command: is empty; give the shell command that runs the tests "
        "(an empty one passes without testing)"
    ]


def test_a_blank_junit_path_is_refused(check: Check) -> None:
    assert check(("junit: reports/unit.xml", "junit: ''")) == [
        f"{BAD}:60: stage.tests[0].junit: is empty; give the path of the JUnit XML report the command writes, "
        "or remove junit"
    ]


# ------------------------------------------------------------------------- stage.qa_checklist


@pytest.mark.parametrize("blank", ["''", "'  '"])
def test_a_blank_qa_checklist_item_is_refused(check: Check, blank: str) -> None:
    assert check(("- Pay with a saved card", f"- {blank}")) == [
        f"{BAD}:63: stage.qa_checklist[0]: is empty; write what QA checks, or remove the item"
    ]


def test_a_repeated_qa_checklist_item_is_refused(check: Check) -> None:
    assert check(("- A declined saved card shows the retry screen", "- 'Pay with a saved card '")) == [
        f"{BAD}:65: stage.qa_checklist[2]: 'Pay with a saved card' is already qa_checklist[0]; remove the repeat"
    ]


# ---------------------------------------------------------------------------- stage.load_test


@pytest.mark.parametrize("host", ["nope", "'http://'", "ftp://127.0.0.1:8002", "127.0.0.1:8002"])
def test_a_load_test_host_that_is_not_an_http_url(check: Check, host: str) -> None:
    shown = host.strip("'")
    assert check(("host: http://127.0.0.1:8002", f"host: {host}")) == [
        f"{BAD}:68: stage.load_test.host: an http:// or https:// URL (Locust's --host) is required, got {shown!r}"
    ]


def test_an_https_load_test_host_is_allowed(check: Check) -> None:
    assert check(("host: http://127.0.0.1:8002", "host: https://checkout.example.com")) == []


@pytest.mark.parametrize(
    ("users", "shown"), [("1e30", "1e+30"), (str(MAX_LOAD_USERS + 1), str(MAX_LOAD_USERS + 1)), (DIGITS_401, "1e+400")]
)
def test_more_load_test_users_than_any_run_simulates(check: Check, users: str, shown: str) -> None:
    assert check(("users: 50", f"users: {users}")) == [
        f"{BAD}:69: stage.load_test.users: {shown} users is more than a load test can simulate; give at most 1,000,000"
    ]


def test_the_most_load_test_users_are_allowed(check: Check) -> None:
    assert check(("users: 50", f"users: {MAX_LOAD_USERS}")) == []


# --------------------------------------------------------------- contracts that can never fire


@pytest.mark.parametrize("above", ["1e30", "1.0e+30", str(MAX_SIGNAL_ABOVE)])
def test_a_complaints_count_no_window_reaches(check: Check, above: str) -> None:
    shown = "1e+30" if "e" in above else above
    assert check((COMPLAINTS_ABOVE, f"above: {above} ")) == [
        f"{BAD}:30: rollback_contract.triggers[2].above: a count above {shown} can never fire: no window gathers "
        "more than 1,000,000 customer_complaint signals; give a smaller count"
    ]


def test_a_large_but_reachable_complaints_count_is_allowed(check: Check) -> None:
    assert check((COMPLAINTS_ABOVE, f"above: {MAX_SIGNAL_ABOVE - 1} ")) == []


@pytest.mark.parametrize(("value", "shown"), [("1e30", "1e+30"), ("1.0e+30", "1e+30"), (DIGITS_401, "1e+400")])
def test_min_samples_no_window_holds(check: Check, value: str, shown: str) -> None:
    assert check((MIN_SAMPLES, f"min_samples: {value}")) == [
        f"{BAD}:23: rollback_contract.triggers[0].min_samples: {shown} can never fire: no window holds more than "
        "1e+15 samples (10⁵ requests a second for 300 years); give a smaller number"
    ]


def test_min_samples_written_with_an_exponent_is_a_whole_number(check: Check) -> None:
    # YAML 1.1 reads 2e2 as text; it is still the whole number 200.
    assert check((MIN_SAMPLES, "min_samples: 2e2")) == []


@pytest.mark.parametrize(("value", "shown"), [("1e30", "1e+30"), ("527041", "527041")])
def test_more_breaches_in_a_row_than_fit_in_366_days(check: Check, value: str, shown: str) -> None:
    assert check((MIN_SAMPLES, f"consecutive: {value}")) == [
        f"{BAD}:23: rollback_contract.triggers[0].consecutive: {shown} can never fire: that many analyses in a row, "
        "one every 1m, take longer than 366d, the longest a step or validation window may last; give at most 527,040"
    ]


def test_the_limit_on_breaches_in_a_row_follows_the_plan_s_analysis_interval(check: Check) -> None:
    assert check((MIN_SAMPLES, "consecutive: 527040")) == []
    assert check((MIN_SAMPLES, "consecutive: 9000"), ("rollout:\n", "rollout:\n  analysis_interval: 1h\n")) == [
        f"{BAD}:23: rollback_contract.triggers[0].consecutive: 9000 can never fire: that many analyses in a row, "
        "one every 1h, take longer than 366d, the longest a step or validation window may last; give at most 8,784"
    ]


def test_the_limit_on_breaches_in_a_row_follows_the_service_s_default_rollout(check: Check, project: Path) -> None:
    defaults = (
        "defaults:\n  rollout:\n    analysis_interval: 1d\n    steps:\n"
        "      - {weight: 1, bake: 30m}\n      - {weight: 10, bake: 2h}\n      - {weight: 50, bake: 4h}\n"
        "      - {weight: 100}\n"
    )
    service = project / SERVICE
    service.write_text(service.read_text(encoding="utf-8") + defaults, encoding="utf-8")
    steps = "rollout:\n  steps:\n"
    rollout = (project / EXAMPLE).read_text(encoding="utf-8")
    block = rollout[rollout.index(steps) : rollout.index("verify:")]
    assert check((MIN_SAMPLES, "consecutive: 367"), (block, "")) == [
        f"{BAD}:23: rollback_contract.triggers[0].consecutive: 367 can never fire: that many analyses in a row, "
        "one every 1d, take longer than 366d, the longest a step or validation window may last; give at most 366"
    ]


# --------------------------------------------------------------------------- numbers too large


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "1e400 is too large; give a smaller number"),
        ("1.0e+400", "1.0e+400 is too large; give a smaller number"),
        ("-1.0e+400", "-1.0e+400 is too large; give a smaller number"),
        (DIGITS_401, "a 401-digit number is too large; give a smaller number"),
        (f"'{DIGITS_401}'", "a 401-digit number is too large; give a smaller number"),
        ("1." + "0" * 30 + "e+400", "1." + "0" * (SHOWN_IN_FULL_CHARS - 2) + "… is too large; give a smaller number"),
        (".inf", "a finite number is required, got inf"),  # infinity itself is another mistake
    ],
)
def test_a_number_too_large_for_a_float_says_so_briefly(check: Check, value: str, message: str) -> None:
    assert check((ERRORS_ABOVE, f"above: {value} ")) == [f"{BAD}:21: rollback_contract.triggers[0].above: {message}"]


def test_a_whole_number_too_large_for_a_float_says_so() -> None:
    from shiprail.schema.base import _whole

    with pytest.raises(ValueError, match=r"^1e400 is too large; give a smaller number$"):
        _whole("1e400")


def test_yaml_keeps_a_float_too_large_as_written_and_infinity_as_infinity() -> None:
    assert parse_yaml("a: 1.0e+400\nb: .inf\nc: -.Inf\nd: 1.5e+3\n", "x.yaml").data == {
        "a": "1.0e+400",
        "b": float("inf"),
        "c": float("-inf"),
        "d": 1500.0,
    }


# --------------------------------------------------------------------------- numbers too small


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # A float holds none of these: each read as 0, a trigger that fires at the first error.
        ("1e-400", "1e-400 is too small to hold and would read as 0; write 0 or a larger number"),
        ("1.0e-400", "1.0e-400 is too small to hold and would read as 0; write 0 or a larger number"),
        ("-0.5e-999", "-0.5e-999 is too small to hold and would read as 0; write 0 or a larger number"),
        ("'1e-400'", "1e-400 is too small to hold and would read as 0; write 0 or a larger number"),
        (
            "0." + "0" * 400 + "1",
            "0." + "0" * (SHOWN_IN_FULL_CHARS - 2) + "… is too small to hold and would read as 0; write 0 or a "
            "larger number",
        ),
    ],
)
def test_a_number_too_small_for_a_float_says_so(check: Check, value: str, message: str) -> None:
    assert check((ERRORS_ABOVE, f"above: {value} ")) == [f"{BAD}:21: rollback_contract.triggers[0].above: {message}"]


@pytest.mark.parametrize("value", ["0", "0.0", "0.0e-400", "-0.0", "5e-324", "1e-300"])
def test_zero_written_as_zero_and_the_smallest_floats_are_numbers(check: Check, value: str) -> None:
    assert check((ERRORS_ABOVE, f"above: {value} ")) == []


def test_a_whole_number_too_small_for_a_float_says_so(check: Check) -> None:
    assert check((MIN_SAMPLES, "min_samples: 1.0e-400")) == [
        f"{BAD}:23: rollback_contract.triggers[0].min_samples: 1.0e-400 is too small to hold and would read as 0; "
        "write 0 or a larger number"
    ]


def test_yaml_keeps_a_float_too_small_as_written_and_zero_as_zero() -> None:
    assert parse_yaml("a: 1.0e-400\nb: 0.0e-400\nc: -2.5e-999\nd: 5.0e-324\n", "x.yaml").data == {
        "a": "1.0e-400",
        "b": 0.0,
        "c": "-2.5e-999",
        "d": 5e-324,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (".nan", "a finite number is required, got nan"),
        ("1.0e+400", "1.0e+400 is too large; give a smaller number"),
        ("1.0e-400", "1.0e-400 is too small to hold and would read as 0; write 0 or a larger number"),
        ("true", "a number is required, got true"),
    ],
)
def test_a_quantile_is_a_finite_number_as_written(
    project: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    # quantile was a plain float: .nan passed its bound as "at most 1, got nan", true as 1 (p100),
    # 1.0e-400 as 0 (the fastest request, p0).
    monkeypatch.chdir(project)
    push = (
        "provider:\n  type: push\n\nmetrics:\n"
        "  error_rate:\n    kind: error_rate\n    counter: requests\n    errors: failures\n"
        f"  latency_p99:\n    kind: latency\n    histogram: sdk_latency_seconds\n    quantile: {value}\n"
    )
    text = (project / SERVICE).read_text(encoding="utf-8")
    (project / SERVICE).write_text(text[: text.index("provider:")] + push, encoding="utf-8")
    _, _, found = open_project(project).load_service("checkout")
    assert [str(p) for p in found] == [f"{SERVICE}:23: metrics.latency_p99.quantile: {message}"]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_probe_never_expects_a_number_that_no_answer_equals(check: Check, value: str) -> None:
    shown = value.lstrip(".").replace("-.", "-")
    assert check(("max_latency: 0.5", f"max_latency: 0.5\n      expect_json: {{path: ok, equals: {value}}}")) == [
        f"{BAD}:89: verify.probes[0].expect_json.equals: a finite number is required, got {shown}"
    ]


def _expect_json(value: str) -> tuple[str, str]:
    """The edit giving the example plan's probe (line 89) ``expect_json: {path: total, equals: <value>}``."""
    return ("max_latency: 0.5", f"max_latency: 0.5\n      expect_json: {{path: total, equals: {value}}}")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.0e-400", "1.0e-400 is too small to hold and would read as 0; write 0 or a larger number"),
        ("1e-400", "1e-400 is too small to hold and would read as 0; write 0 or a larger number"),
        ("-2.5E-999", "-2.5E-999 is too small to hold and would read as 0; write 0 or a larger number"),
        ("1.0e+400", "1.0e+400 is too large; give a smaller number"),
        ("1e400", "1e400 is too large; give a smaller number"),
        (DIGITS_401, "a 401-digit number is too large; give a smaller number"),
    ],
)
def test_a_probe_s_unquoted_number_no_float_holds_is_refused(check: Check, value: str, message: str) -> None:
    # equals takes text or a number, and the loader kept a number no float holds as the text
    # written: equals: 1.0e-400 expected the text "1.0e-400", which no JSON number equals, and
    # the plan passed without a word (a 401-digit one was refused three times, once per type).
    assert check(_expect_json(value)) == [
        f"{BAD}:89: verify.probes[0].expect_json.equals: {message}, or quote it to expect that text"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e5", 100000.0),
        ("1E5", 100000.0),
        ("1.0e5", 100000.0),
        ("-1e+5", -100000.0),
        ("5e-324", 5e-324),
        ("010", 10.0),
        ("0.0e-400", 0.0),
        ("1.0e+5", 100000.0),
        ("'1e5'", "1e5"),
        ('"1.0e-400"', "1.0e-400"),
        ("!!str 1e5", "1e5"),
        ("v1e5", "v1e5"),
        ("7", 7.0),
        ("9007199254740992", 9007199254740992.0),
        # Above 2**53 a float rounds a whole number (to ...992): an id no answer could equal.
        ("9007199254740993", 9007199254740993),
        ("-12345678901234567890", -12345678901234567890),
    ],
)
def test_a_probe_expects_an_unquoted_number_as_the_number_and_a_quoted_one_as_text(
    check: Check, project: Path, value: str, expected: float | str
) -> None:
    # YAML 1.1 reads 1e5 and 1.0e5 (no dot, or no exponent sign) as text: equals: 1e5 expected
    # the text "1e5", and the probe failed every answer {"total": 100000}, rolling the release back.
    assert check(_expect_json(value)) == []
    equals = check_plan_file(project / BAD).plan.verify.probes[0].expect_json
    assert equals is not None
    assert (type(equals.equals), equals.equals) == (type(expected), expected)


# The example plan's probe (lines 85-88) as an anchor, and a second probe merged from it (<<: *page).
_MERGED_PROBE = (
    "    - name: checkout page\n      url: http://127.0.0.1:8002/health\n      expect_status: 200\n"
    "      max_latency: 0.5\n",
    "    - &page\n      name: checkout page\n      url: http://127.0.0.1:8002/health\n      expect_status: 200\n"
    "      max_latency: 0.5\n      expect_json: {path: total, equals: VALUE}\n    - <<: *page\n      name: cart page\n",
)


def test_a_probe_merged_from_an_anchor_expects_the_same_number(check: Check, project: Path) -> None:
    # The unquoted numbers were read by their place in the file: a probe merged from an anchor got
    # its equals: 1e5 as the text "1e5" (the anchor's own probe got 100000), which no JSON number
    # equals, so only the copy failed every answer {"total": 100000}.
    old, new = _MERGED_PROBE
    assert check((old, new.replace("VALUE", "1e5"))) == []
    probes = check_plan_file(project / BAD).plan.verify.probes
    assert [(p.name, p.expect_json.equals if p.expect_json else None) for p in probes] == [
        ("checkout page", 100000.0),
        ("cart page", 100000.0),
    ]
    # And one no float holds is refused in the copy too (it passed there without a word).
    assert check((old, new.replace("VALUE", "1e400"))) == [
        f"{BAD}:{line}: verify.probes[{n}].expect_json.equals: 1e400 is too large; give a smaller number, "
        "or quote it to expect that text"
        for n, line in ((0, 90), (1, 91))
    ]


def test_a_service_default_probe_s_unquoted_number_no_float_holds_is_refused(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = "{name: p, url: 'http://x/', expect_json: {path: a, equals: 1e400}}"
    probes = f"defaults:\n  verify:\n    probes:\n      - {probe}\n"
    assert service_problems(project, monkeypatch, "provider:\n", f"{probes}provider:\n") == [
        f"{SERVICE}:15: defaults.verify.probes[0].expect_json.equals: 1e400 is too large; give a smaller number, "
        "or quote it to expect that text"
    ]


def test_the_loader_notes_each_unquoted_number_as_written() -> None:
    doc = parse_yaml("a: 1e5\nb: '1e5'\nc: !!str 1e5\nd: 1.0e-400\ne: [1.5, 1e-400, x1]\n", "x.yaml")
    assert doc.data == {"a": "1e5", "b": "1e5", "c": "1e5", "d": "1.0e-400", "e": [1.5, "1e-400", "x1"]}
    assert doc.numbers == {("a",): "1e5", ("d",): "1.0e-400", ("e", 0): "1.5", ("e", 1): "1e-400"}


# ---------------------------------------------------------------------------- the service file


@pytest.mark.parametrize(
    ("router", "problems"),
    [
        (
            "router:\n  type: command\n  set: '   '\n  get: ''\n  timeout: 0s\n\n",
            [
                f"{SERVICE}:7: router.set: is empty; give the shell command that applies SHIPRAIL_WEIGHT",
                f"{SERVICE}:8: router.get: is empty; give a shell command that prints the current weight, "
                "or remove get",
                f"{SERVICE}:9: router.timeout: must be longer than 0s",
            ],
        ),
        ("router:\n  type: command\n  set: ./set-weight.sh\n  get: ./get-weight.sh\n  timeout: 5s\n\n", []),
    ],
)
def test_a_command_router_that_could_never_apply_a_weight(
    project: Path, monkeypatch: pytest.MonkeyPatch, router: str, problems: list[str]
) -> None:
    monkeypatch.chdir(project)
    text = (project / SERVICE).read_text(encoding="utf-8")
    old = text[text.index("router:") : text.index("provider:")]
    (project / SERVICE).write_text(text.replace(old, router), encoding="utf-8")
    _, _, found = open_project(project).load_service("checkout")
    assert [str(p) for p in found] == problems


def test_an_nginx_router_without_an_include_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert service_problems(
        project, monkeypatch, "include_file: /etc/nginx/shiprail/checkout.conf", "include_file: ''"
    ) == [f"{SERVICE}:7: router.include_file: is empty; give the path of the file shiprail writes the split into"]


def test_a_refused_metric_key_is_not_also_reported_missing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    push = (
        "provider:\n  type: push\n\nmetrics:\n"
        "  error_rate:\n    kind: error_rate\n    counter: requests\n    errors: failures\n"
        "  latency_p99:\n    kind: latency\n    histogram: sdk_latency_seconds\n    quantile: 1.5\n"
    )
    text = (project / SERVICE).read_text(encoding="utf-8")
    (project / SERVICE).write_text(text[: text.index("provider:")] + push, encoding="utf-8")
    _, _, found = open_project(project).load_service("checkout")
    # Not "metric 'latency_p99' of kind latency has no `quantile`" first: it has one, out of range.
    assert [str(p) for p in found] == [f"{SERVICE}:23: metrics.latency_p99.quantile: must be at most 1, got 1.5"]


# ------------------------------------------------------------------- directories and FIFOs


def test_a_service_file_that_is_a_directory(check: Check, project: Path) -> None:
    (project / "services" / "shop.yaml").mkdir()
    assert check(("service: checkout", "service: shop")) == ["services/shop.yaml: is a directory; give a file"]


def test_a_directory_is_not_a_known_service(project: Path) -> None:
    (project / "services" / "shop.yaml").mkdir()
    assert open_project(project).known_services() == ["checkout"]


def test_a_policy_that_is_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shiprail.yaml").mkdir()
    (tmp_path / "releases").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        open_project(tmp_path / "releases")
    assert exc.value.message == (
        "shiprail.yaml is a directory, not a policy file; move it aside and run `shiprail init` to create one"
    )


def test_no_policy_at_all_is_still_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^no shiprail.yaml found in \. or any parent directory"):
        open_project(tmp_path)


def _refused_within_seconds(path: Path) -> list[str]:
    """``load_yaml(path)``'s problems, failing (instead of hanging) if it blocks on the file."""
    found: list[str] = []

    def read() -> None:
        try:
            load_yaml(path)
        except PlanInvalid as exc:
            found.extend(str(p) for p in exc.problems)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock it: a writer opening the FIFO ends the read
        with open(path, "w", encoding="utf-8"):
            pass
        pytest.fail(f"reading {path} blocked")
    return found


def test_a_fifo_is_refused_without_opening_it(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    fifo = project / "releases" / "pipe.yaml"
    os.mkfifo(fifo)
    assert _refused_within_seconds(fifo) == [
        "releases/pipe.yaml: is not a regular file (a FIFO, socket or device); give a file"
    ]


def test_a_plan_that_is_a_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    with pytest.raises(PlanInvalid) as exc:
        check_plan_file(project / "releases")
    assert [str(p) for p in exc.value.problems] == ["releases: is a directory; give a file"]


def test_a_key_or_a_count_in_superscript_digits_is_a_problem_not_a_traceback(check: Check) -> None:
    # "²" is a digit to str.isdigit(), but int() refuses it: the key crashed the loader with a
    # ValueError, and the count showed int()'s own words as the message.
    assert check(("owner: alice", "owner: alice\n²: x")) == [
        f"{BAD}:6: ²: unknown key '²'; known keys: service, version, baseline, owner, scope, risk, "
        "rollback_contract, communication, stage, rollout, verify"
    ]
    assert check((MIN_SAMPLES, 'min_samples: "²"')) == [
        f"{BAD}:23: rollback_contract.triggers[0].min_samples: a whole number is required, got '²'; "
        "write it in ASCII digits (0-9)"
    ]


def test_numbers_in_other_scripts_digits_are_refused_as_durations_are(check: Check) -> None:
    # float() reads Arabic-Indic and fullwidth digits, so a threshold, count or weight written in
    # them passed as a number (YAML, JSON and pydantic read text), while a bake written alike
    # ("\u0665m") and a min_bake key were refused.
    arabic_ten, fullwidth_two_hundred = "\u0661\u0660", "\uff12\uff10\uff10"
    assert check(
        (ERRORS_ABOVE, 'above: "\u0660.\u0660\u0661" '),
        (MIN_SAMPLES, f"min_samples: {fullwidth_two_hundred}"),
        ("{weight: 10, bake: 2h}", f"{{weight: {arabic_ten}, bake: 2h}}"),
    ) == [
        f"{BAD}:21: rollback_contract.triggers[0].above: a number is required, got '\u0660.\u0660\u0661'; "
        "write it in ASCII digits (0-9)",
        f"{BAD}:23: rollback_contract.triggers[0].min_samples: a whole number is required, "
        f"got '{fullwidth_two_hundred}'; write it in ASCII digits (0-9)",
        f"{BAD}:77: rollout.steps[1].weight: a number is required, got '{arabic_ten}'; write it in ASCII digits (0-9)",
    ]


def test_a_number_written_with_a_percent_sign_says_how_each_field_writes_it(check: Check) -> None:
    # "above: 1%" and "weight: 10%" were refused as "a number is required, got '1%'", without
    # saying that a weight is written in percent (10) and an error rate as a fraction (0.01).
    hint = "; write it without the %: a weight in percent (1 for 1%), an error rate as a fraction (0.01 for 1%)"
    assert check((ERRORS_ABOVE, 'above: "1%"'), ("{weight: 10, bake: 2h}", "{weight: 10 %, bake: 2h}")) == [
        f"{BAD}:21: rollback_contract.triggers[0].above: a number is required, got '1%'{hint}",
        f"{BAD}:77: rollout.steps[1].weight: a number is required, got '10 %'{hint}",
    ]


def test_a_version_yaml_reads_as_a_number_is_shown_as_written_with_the_fix(check: Check) -> None:
    # YAML reads an unquoted 1.10 as 1.1 and 1.0e+3 as 1000: the refusal showed 'got 1.1' and
    # 'got 1000.0', values nobody wrote, and did not say to quote them.
    assert check(('version: "2.4.0"', "version: 1.10"), ('baseline: "2.3.1"', "baseline: 1.0e+3")) == [
        f'{BAD}:3: version: text is required, but YAML reads 1.10 unquoted as the number 1.1; quote it: "1.10"',
        f'{BAD}:4: baseline: text is required, but YAML reads 1.0e+3 unquoted as the number 1000; quote it: "1.0e+3"',
    ]
    assert check(('version: "2.4.0"', "version: 2")) == [
        f'{BAD}:3: version: text is required, got the number 2; quote it: "2"'
    ]
    # A float too large or too small to hold is a number YAML reads all the same: it was taken as
    # the text "1.0e+400" where 1.0e+5 was refused. Text YAML 1.1 reads as text (1e5) stays text.
    assert check(('version: "2.4.0"', "version: 1.0e+400"), ('baseline: "2.3.1"', "baseline: 1.0e-400")) == [
        f'{BAD}:3: version: text is required, but YAML reads 1.0e+400 unquoted as a number; quote it: "1.0e+400"',
        f'{BAD}:4: baseline: text is required, but YAML reads 1.0e-400 unquoted as a number; quote it: "1.0e-400"',
    ]
    assert check(('version: "2.4.0"', "version: 5e12345")) == []


def test_text_yaml_reads_as_a_date_is_refused_once_with_the_fix(check: Check, project: Path) -> None:
    # YAML 1.1 reads 2026-01-02 as a date: a date-named version was refused as "text is required,
    # got 2026-01-02" without saying to quote it, and a probe's equals: 2026-01-02 three times,
    # once per type (text, number, boolean) it takes.
    assert check(
        ('version: "2.4.0"', "version: 2026-01-02"),
        ("max_latency: 0.5", "max_latency: 0.5\n      expect_json: {path: day, equals: 2026-01-02}"),
        ("    - Pay with a saved card", "    - 2026-01-02 10:00:00"),
    ) == [
        f'{BAD}:3: version: text is required, but YAML reads 2026-01-02 unquoted as a date; quote it: "2026-01-02"',
        f"{BAD}:63: stage.qa_checklist[0]: text is required, but YAML reads 2026-01-02 10:00:00 unquoted as a date "
        'and time; quote it: "2026-01-02 10:00:00"',
        f"{BAD}:89: verify.probes[0].expect_json.equals: text is required, but YAML reads 2026-01-02 unquoted as a "
        'date; quote it: "2026-01-02"',
    ]
    assert check(('version: "2.4.0"', "version: '2026-01-02'")) == []
    assert check_plan_file(project / BAD).plan.version == "2026-01-02"


def test_a_lone_equals_sign_is_text(check: Check, project: Path) -> None:
    # YAML 1.1 reads a plain = as the "value key" of a mapping, which PyYAML cannot construct: the
    # plan was refused as "YAML syntax error: could not determine a constructor for the tag
    # 'tag:yaml.org,2002:value'", on a line with no syntax error. As in YAML 1.2, it is text.
    assert check(("    - Pay with a saved card", "    - =")) == []
    assert check_plan_file(project / BAD).plan.stage.qa_checklist[0] == "="
    assert parse_yaml("a: =\nb: [=, '=']\n", "x.yaml").data == {"a": "=", "b": ["=", "="]}


def test_a_binary_value_is_refused_not_decoded_into_a_command(check: Check) -> None:
    # !!binary is base64, which a text field took as its decoded bytes: this plan's test command
    # was `rm -rf /`, though no reviewer could read that in it.
    assert check((COMMAND, "command: !!binary cm0gLXJmIC8=")) == [
        f"{BAD}:59: stage.tests[0].command: !!binary is not read in shiprail files; write the text itself"
    ]


def test_yaml_1_1_octal_and_base_60_numbers_are_not_read(check: Check, project: Path) -> None:
    # YAML 1.1 reads 010 as octal 8 and 1:30 in base 60 as 90: min_samples: 010 asked for 8
    # samples and above: 1:30 fired above 90 complaints, without a word. As in YAML 1.2, 010 is
    # ten, and 1:30 is text, which a number field refuses and a version takes.
    assert check((COMPLAINTS_ABOVE, "above: 1:30 ")) == [
        f"{BAD}:30: rollback_contract.triggers[2].above: a number is required, got '1:30'"
    ]
    assert check((MIN_SAMPLES, "min_samples: 010"), ('baseline: "2.3.1"', "baseline: 1:20")) == []
    checked = check_plan_file(project / BAD)
    assert (checked.plan.rollback_contract.triggers[0].min_samples, checked.plan.baseline) == (10, "1:20")
