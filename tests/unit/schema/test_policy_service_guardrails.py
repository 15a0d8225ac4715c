"""The guardrails of ``shiprail.yaml`` and of ``services/<name>.yaml``, each with its exact line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.defaults import OVERRIDE_REASON_MIN_CHARS_MAX
from shiprail.errors import ConfigError, PlanInvalid
from shiprail.project import open_project

POLICY = "shiprail.yaml"
SERVICE = "services/checkout.yaml"
# The example service's provider: block, were it the scrape provider.
SCRAPE = (
    "provider:\n  type: scrape\n  stable_url: http://127.0.0.1:8001/metrics\n"
    "  canary_url: http://127.0.0.1:8002/metrics\n\n"
)


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def edit(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def policy_problems(project: Path, old: str, new: str) -> list[str]:
    edit(project, POLICY, old, new)
    with pytest.raises(PlanInvalid) as exc:
        open_project(project)
    return [str(p) for p in exc.value.problems]


def service_problems(project: Path, old: str, new: str, name: str = "checkout") -> list[str]:
    text = (project / SERVICE).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {SERVICE}"
    (project / f"services/{name}.yaml").write_text(text.replace(old, new), encoding="utf-8")
    service, doc, problems = open_project(project).load_service(name)
    assert service is None, "a service with problems is not returned"
    assert doc is not None
    return [str(p) for p in problems]


# ------------------------------------------------------------------------------------ policy


def test_the_example_policy_loads(project: Path) -> None:
    p = open_project(project)
    assert p.root == project.resolve()
    assert p.policy.rollout.weights == [1, 10, 50, 100]
    assert p.policy.rollout.min_bake["high"] == {1: 1800, 10: 7200, 50: 14400}
    assert p.policy.contract.must_cover == ["error_rate", "latency", "customer_complaint"]
    assert p.policy.verify.window == 86400
    assert sorted(p.policy.channels) == ["oncall-email", "releases-slack", "status-page"]


def test_the_project_is_found_from_a_subdirectory(project: Path) -> None:
    assert open_project(project / "releases").policy.gates["high"].approvals == 2


def test_no_policy_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path_factory.mktemp("empty")
    monkeypatch.chdir(empty)
    with pytest.raises(ConfigError) as exc:
        open_project(empty)
    assert exc.value.message == (
        "no shiprail.yaml found in . or any parent directory; run `shiprail init` to create one"
    )
    assert exc.value.exit_code == 2


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ("[1, 50, 10, 100]", f"{POLICY}:20: rollout.weights[2]: 10 comes after 50; weights must increase"),
        ("[1, 10, 50, 50, 100]", f"{POLICY}:20: rollout.weights[3]: 50 comes after 50; weights must increase"),
    ],
)
def test_policy_weights_that_do_not_increase(project: Path, weights: str, problem: str) -> None:
    assert policy_problems(project, "weights: [1, 10, 50, 100]", f"weights: {weights}") == [problem]


def test_policy_weights_that_do_not_end_at_100(project: Path) -> None:
    assert policy_problems(project, "weights: [1, 10, 50, 100]", "weights: [1, 10, 50]") == [
        f"{POLICY}:20: rollout.weights: the last weight must be 100"
    ]


def test_no_policy_weights(project: Path) -> None:
    # One problem, not one per min_bake entry that no longer names a weight.
    assert policy_problems(project, "weights: [1, 10, 50, 100]", "weights: []") == [
        f"{POLICY}:20: rollout.weights: at least one weight is required, and the last must be 100"
    ]


def test_a_policy_weight_that_is_not_a_percentage(project: Path) -> None:
    assert policy_problems(project, "weights: [1, 10, 50, 100]", "weights: [0.5, 10, 50, 100]") == [
        f"{POLICY}:20: rollout.weights[0]: a whole number is required, got 0.5"
    ]


def test_a_min_bake_key_that_is_not_a_weight(project: Path) -> None:
    assert policy_problems(project, "low:    {1: 5m,  10: 30m", "low:    {1: 5m,  20: 30m") == [
        f"{POLICY}:23: rollout.min_bake.low[20]: weight 20 is not one of rollout.weights (1, 10, 50, 100)"
    ]


def test_a_min_bake_for_an_unknown_risk(project: Path) -> None:
    assert policy_problems(project, "    low:    {1: 5m,", "    lo:    {1: 5m,") == [
        f"{POLICY}:23: rollout.min_bake.lo: one of 'low', 'medium', 'high' is required, got 'lo'"
    ]


def test_a_min_bake_that_is_not_a_duration(project: Path) -> None:
    assert policy_problems(project, "low:    {1: 5m,", "low:    {1: 5 min,") == [
        f"{POLICY}:23: rollout.min_bake.low[1]: a duration like 30s, 5m, 2h or 1d is required, got '5 min'"
    ]


@pytest.mark.parametrize(("entry", "hint"), [("latncy", "; did you mean 'latency'?"), ("cpu", "")])
def test_an_unknown_must_cover_entry(project: Path, entry: str, hint: str) -> None:
    assert policy_problems(project, "must_cover: [error_rate, latency,", f"must_cover: [error_rate, {entry},") == [
        f"{POLICY}:30: contract.must_cover[1]: {entry!r} is neither a metric kind "
        f"(error_rate, latency, rate, count, ratio, gauge) nor a signal (customer_complaint, alert){hint}"
    ]


@pytest.mark.parametrize("chars", [OVERRIDE_REASON_MIN_CHARS_MAX + 1, 10**9])
def test_a_reason_min_chars_no_one_would_write_is_refused(project: Path, chars: int) -> None:
    # 10**9 passed: every override, and every post-mortem summary, then needed a billion characters.
    assert policy_problems(project, "reason_min_chars: 15", f"reason_min_chars: {chars}") == [
        f"{POLICY}:49: overrides.reason_min_chars: {chars} characters would make every override reason (and "
        f"post-mortem summary) all but impossible to write; give at most {OVERRIDE_REASON_MIN_CHARS_MAX}"
    ]


def test_a_reason_min_chars_up_to_the_bound_loads(project: Path) -> None:
    edit(project, POLICY, "reason_min_chars: 15", f"reason_min_chars: {OVERRIDE_REASON_MIN_CHARS_MAX}")
    assert open_project(project).policy.overrides.reason_min_chars == OVERRIDE_REASON_MIN_CHARS_MAX


def test_an_unknown_policy_key(project: Path) -> None:
    assert policy_problems(project, "  analysis_interval: 1m", "  analysis_intervl: 1m") == [
        f"{POLICY}:26: rollout.analysis_intervl: unknown key 'analysis_intervl'; did you mean 'analysis_interval'?"
    ]


def test_an_unknown_channel_type(project: Path) -> None:
    assert policy_problems(project, "{type: slack,", "{type: slak,") == [
        f"{POLICY}:36: channels.releases-slack.type: 'slak' is not known; use one of 'slack', 'webhook', 'email'"
    ]


def test_a_channel_without_a_type(project: Path) -> None:
    assert policy_problems(project, "{type: slack, url_env", "{url_env") == [
        f"{POLICY}:36: channels.releases-slack.type: is required"
    ]


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        # Each was accepted, then failed every delivery at send time, eight times over 15 minutes.
        ("to: []", "to: at least one recipient is required, e.g. [oncall@example.com]"),
        ("to: [oncall]", "to: 'oncall' is not an email address, e.g. oncall@example.com"),
        (
            'to: ["a@example.com b@example.com"]',
            "to: 'a@example.com b@example.com' holds more than one address; give each as an item of its own",
        ),
        (
            'to: ["a@example.com, b@example.com"]',
            "to: 'a@example.com, b@example.com' holds more than one address; give each as an item of its own",
        ),
        (
            'to: ["a@example.com\\nBcc: x@example.com"]',
            "to: 'a@example.com\\nBcc: x@example.com' is not an email "
            "address: it holds a line break or control character",
        ),
        (
            "to: [oncall@example.com], sender: shiprail",
            "sender: 'shiprail' is not an email address, e.g. oncall@example.com",
        ),
    ],
)
def test_an_email_channel_without_usable_addresses(project: Path, channel: str, problem: str) -> None:
    assert policy_problems(project, "to: [oncall@example.com]", channel) == [
        f"{POLICY}:38: channels.oncall-email.{problem}"
    ]


def test_email_addresses_with_names_load(project: Path) -> None:
    edit(
        project,
        POLICY,
        "to: [oncall@example.com]",
        'to: ["On-call <oncall@example.com>"], sender: "shiprail <r@example.com>"',
    )
    assert open_project(project).policy.channels["oncall-email"].to == ["On-call <oncall@example.com>"]


def test_a_zero_verify_window(project: Path) -> None:
    assert policy_problems(project, "window: 24h", "window: 0s") == [
        f"{POLICY}:33: verify.window: must be longer than 0s"
    ]


def test_nobody_may_override(project: Path) -> None:
    assert policy_problems(project, "roles: [executive]\n  reason", "roles: []\n  reason") == [
        f"{POLICY}:48: overrides.roles: at least one role must be able to override"
    ]


@pytest.mark.parametrize("name", ["Bob", "BOB", "' bob'"])
def test_two_people_whose_names_differ_only_in_case_or_spaces(project: Path, name: str) -> None:
    # The approvals gate counts distinct names: bob and Bob approving were two approvals.
    shown = name.strip("'")
    assert policy_problems(
        project,
        "  carol: {roles: [approver], email: carol@example.com}\n",
        f"  carol: {{roles: [approver], email: carol@example.com}}\n  {name}: {{roles: [approver]}}\n",
    ) == [
        f"{POLICY}:44: people.{shown}: {shown!r} differs from 'bob' only in case or spaces; give each person one name"
    ]


def test_an_unknown_role(project: Path) -> None:
    assert policy_problems(project, "dana:  {roles: [executive]", "dana:  {roles: [exec]") == [
        f"{POLICY}:45: people.dana.roles[0]: one of 'releaser', 'approver', 'qa', 'executive', 'oncall' "
        "is required, got 'exec'"
    ]


def test_negative_approvals(project: Path) -> None:
    assert policy_problems(project, "high:   {approvals: 2,", "high:   {approvals: -1,") == [
        f"{POLICY}:16: gates.high.approvals: cannot be negative"
    ]


def test_an_unknown_policy_version(project: Path) -> None:
    assert policy_problems(project, "version: 1", "version: 2") == [f"{POLICY}:3: version: one of 1 is required, got 2"]


def test_every_policy_problem_is_reported_at_once(project: Path) -> None:
    edit(project, POLICY, "weights: [1, 10, 50, 100]", "weights: [1, 50, 10, 100]")
    edit(project, POLICY, "window: 24h", "window: 0s")
    assert policy_problems(project, "roles: [executive]\n  reason", "roles: []\n  reason") == [
        f"{POLICY}:20: rollout.weights[2]: 10 comes after 50; weights must increase",
        f"{POLICY}:33: verify.window: must be longer than 0s",
        f"{POLICY}:48: overrides.roles: at least one role must be able to override",
    ]


# ----------------------------------------------------------------------------------- service


def test_the_example_service_loads(project: Path) -> None:
    service, doc, problems = open_project(project).load_service("checkout")
    assert problems == []
    assert doc is not None and doc.file == SERVICE
    assert service is not None
    assert service.name == "checkout"
    assert service.router.type == "nginx"
    assert {name: m.kind for name, m in service.metrics.items()} == {
        "error_rate": "error_rate",
        "latency_p99": "latency",
    }


def test_a_service_file_that_does_not_exist(project: Path) -> None:
    assert open_project(project).load_service("billing") == (None, None, [])


@pytest.mark.parametrize(
    ("written", "file", "expected"),
    [("payments", "checkout", "checkout"), ("checkout", "billing", "billing")],
)
def test_a_service_name_that_does_not_match_its_file(project: Path, written: str, file: str, expected: str) -> None:
    assert service_problems(project, "name: checkout", f"name: {written}", name=file) == [
        f"services/{file}.yaml:2: name: {written!r} does not match the file name; use name: {expected}"
    ]


def test_a_service_without_metrics(project: Path) -> None:
    metrics = (project / SERVICE).read_text(encoding="utf-8").split("metrics:\n")[1]
    assert service_problems(project, "metrics:\n" + metrics, "metrics: {}\n") == [
        f"{SERVICE}:16: metrics: at least one metric is required for a contract to watch"
    ]


def test_a_metric_its_provider_cannot_compute_is_located(project: Path) -> None:
    # The example's metrics are PromQL queries; read by the scrape provider they need counters.
    text = (project / SERVICE).read_text(encoding="utf-8")
    provider = text[text.index("provider:") : text.index("metrics:")]
    problems = service_problems(project, provider, SCRAPE)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "metrics.error_rate: the scrape provider needs `counter` for a metric of kind error_rate "
        "(provider type scrape)",
        "metrics.latency_p99: the scrape provider needs `histogram` for a metric of kind latency "
        "(provider type scrape)",
    ]


@pytest.mark.parametrize("router", ["envoy", "ngnix"])
def test_an_unknown_router_type_lists_the_known_ones(project: Path, router: str) -> None:
    assert service_problems(project, "type: nginx", f"type: {router}") == [
        f"{SERVICE}:6: router.type: {router!r} is not known; use one of 'nginx', 'haproxy', 'command', 'flag'"
    ]


def test_a_router_without_a_type(project: Path) -> None:
    assert service_problems(project, "  type: nginx\n", "") == [f"{SERVICE}:5: router.type: is required"]


def test_a_router_missing_a_field(project: Path) -> None:
    assert service_problems(project, "  upstream: checkout\n", "") == [f"{SERVICE}:5: router.upstream: is required"]


def test_an_unknown_router_key(project: Path) -> None:
    assert service_problems(project, "  upstream: checkout", "  upstreams: checkout") == [
        f"{SERVICE}:5: router.upstream: is required",
        f"{SERVICE}:8: router.upstreams: unknown key 'upstreams'; did you mean 'upstream'?",
    ]


def test_an_unknown_provider_type(project: Path) -> None:
    assert service_problems(project, "type: prometheus", "type: datadog") == [
        f"{SERVICE}:13: provider.type: 'datadog' is not known; use one of 'prometheus', 'scrape', 'push', 'web'"
    ]


def test_an_unknown_metric_kind(project: Path) -> None:
    assert service_problems(project, "kind: latency", "kind: latncy") == [
        f"{SERVICE}:26: metrics.latency_p99.kind: one of 'error_rate', 'latency', 'rate', 'count', 'ratio', "
        "'gauge' is required, got 'latncy'"
    ]


def test_an_unknown_service_key(project: Path) -> None:
    assert service_problems(project, "description: The checkout API.", "descripton: The checkout API.") == [
        f"{SERVICE}:3: descripton: unknown key 'descripton'; did you mean 'description'?"
    ]


def test_a_service_s_default_stage_and_probes_are_checked_like_a_plan_s(project: Path) -> None:
    defaults = (
        "defaults:\n"
        "  stage:\n"
        "    tests:\n"
        "      - {name: unit, command: pytest, timeout: 0s}\n"
        "  verify:\n"
        "    probes:\n"
        "      - {name: home, url: 'http://x/', expect_status: 999, interval: 0s}\n"
        "metrics:\n"
    )
    assert service_problems(project, "metrics:\n", defaults) == [
        f"{SERVICE}:19: defaults.stage.tests[0].timeout: must be longer than 0s",
        f"{SERVICE}:22: defaults.verify.probes[0].expect_status: an HTTP status is 100 to 599, got 999; "
        "no response can have it",
        f"{SERVICE}:22: defaults.verify.probes[0].interval: must be longer than 0s",
    ]


def test_an_unknown_template_variable_in_a_query_is_located(project: Path) -> None:
    # Caught when the service loads (plan validate), not at the first analysis of the rollout,
    # where every analysis failed on it and the release paused at 1%.
    problems = service_problems(
        project,
        'count_query: sum(increase(http_requests_total{app="checkout",version="{{version}}"}[{{window}}]))',
        'count_query: sum(increase(http_requests_total{app="checkout",version="{{verison}}"}[{{window}}]))',
    )
    assert [p.split(": ", 1)[1] for p in problems] == [
        "metrics.error_rate.count_query: unknown template variable {{verison}} (known: {{version}}, {{window}})"
    ]
    assert problems[0].startswith(f"{SERVICE}:")


def test_an_unknown_template_variable_in_a_web_url_is_located(project: Path) -> None:
    text = (project / SERVICE).read_text(encoding="utf-8")
    provider = text[text.index("provider:") : text.index("metrics:")]
    web = "provider:\n  type: web\n  url: http://stats.test/{{service}}/{{version}}\n\n"
    metrics = text[text.index("metrics:") :]
    simple = "metrics:\n  error_rate:\n    kind: error_rate\n    path: data.rate\n"
    (project / SERVICE).write_text(text.replace(provider, web).replace(metrics, simple), encoding="utf-8")
    problems = service_problems(project, "path: data.rate", "path: data.rate")
    assert [p.split(": ", 1)[1] for p in problems] == [
        "provider.url: unknown template variable {{service}} (known: {{version}}, {{window}}, {{window_seconds}})"
    ]


def test_an_unknown_template_variable_in_a_scrape_label_is_located(project: Path) -> None:
    # The scrape provider fills {{version}} into label matchers; {{verison}} failed every
    # analysis of the release (inconclusive, paused at 1%) instead of plan validate.
    text = (project / SERVICE).read_text(encoding="utf-8")
    provider = text[text.index("provider:") : text.index("metrics:")]
    metrics = text[text.index("metrics:") :]
    counters = (
        "metrics:\n  error_rate:\n    kind: error_rate\n    counter: http_requests_total\n"
        '    error_labels: {code: "5..", version: "{{version}}"}\n'
        '    labels: {app: checkout, version: "{{verison}}"}\n'
    )
    (project / SERVICE).write_text(text.replace(provider, SCRAPE).replace(metrics, counters), encoding="utf-8")
    problems = service_problems(project, "app: checkout,", "app: checkout,")
    assert problems == [
        f"{SERVICE}:22: metrics.error_rate.labels.version: unknown template variable {{{{verison}}}} "
        "(known: {{version}})"
    ]


def test_a_provider_timeout_of_0s_is_refused(project: Path) -> None:
    # Every query would give up at once ("did not answer within 0s"): each analysis inconclusive.
    assert service_problems(
        project, "  url: http://127.0.0.1:9090\n", "  url: http://127.0.0.1:9090\n  timeout: 0s\n"
    ) == [f"{SERVICE}:15: provider.timeout: must be longer than 0s"]
