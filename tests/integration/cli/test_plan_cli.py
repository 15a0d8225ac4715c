"""``shiprail plan validate | schema | show`` run in-process: exit codes, stdout, stderr, JSON."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shiprail.cli.main import main
from tests.support.plans import without_regression_triggers

EXAMPLE = "releases/checkout-2.4.0.yaml"
BAD = "releases/bad.yaml"
OK_LINE = (
    f"{EXAMPLE}: ok — checkout 2.3.1 → 2.4.0, high risk (tag payments is high-risk in shiprail.yaml); "
    "2 approval(s); rollout 1% 30m → 10% 2h → 50% 4h → 100%; 5 triggers"
)
BAD_PROBLEMS = [
    f"{BAD}:21: rollback_contract.triggers[0].above: 5 can never fire: error_rate is a fraction between 0 and 1 "
    "(write 0.01 for 1%)",
    f"{BAD}:50: communication[1].notify[0]: channel 'pager' is not defined in shiprail.yaml channels; "
    "shiprail.yaml defines releases-slack, status-page, oncall-email",
    f"{BAD}:83: verify.on_call: 'bobby' is not a person in shiprail.yaml; add them under people; did you mean 'bob'?",
]


def write_bad(project: Path, name: str = BAD) -> Path:
    text = (project / EXAMPLE).read_text(encoding="utf-8")
    for old, new in [
        ("above: 0.01 ", "above: 5 "),
        ("notify: [status-page]", "notify: [pager]"),
        ("on_call: bob", "on_call: bobby"),
    ]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = project / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- validate


def test_validate_a_valid_plan(shiprail: Any) -> None:
    r = shiprail("plan", "validate", EXAMPLE)
    assert (r.code, r.out, r.err) == (0, OK_LINE + "\n", "")


def test_validate_a_bad_plan_prints_every_problem_and_exits_2(shiprail: Any, project: Path) -> None:
    write_bad(project)
    r = shiprail("plan", "validate", BAD)
    assert r.code == 2
    assert r.out == ""
    assert r.err.splitlines() == BAD_PROBLEMS
    assert "Traceback" not in r.err


def test_validate_json_for_a_valid_plan(shiprail: Any, project: Path) -> None:
    r = shiprail("plan", "validate", "--json", EXAMPLE)
    assert (r.code, r.err) == (0, "")
    plan_hash = hashlib.sha256((project / EXAMPLE).read_bytes()).hexdigest()
    assert r.json() == {"ok": True, "files": [{"file": EXAMPLE, "ok": True, "risk": "high", "plan_hash": plan_hash}]}


def test_validate_json_for_a_bad_plan(shiprail: Any, project: Path) -> None:
    write_bad(project)
    r = shiprail("plan", "validate", BAD, "--json")
    assert (r.code, r.err) == (2, "")
    data = r.json()
    assert data["ok"] is False
    assert [(f["file"], f["ok"]) for f in data["files"]] == [(BAD, False)]
    assert [p["text"] for p in data["files"][0]["problems"]] == BAD_PROBLEMS


def test_validate_several_files_reports_each(shiprail: Any, project: Path) -> None:
    write_bad(project)
    other = project / "releases" / "other.yaml"
    other.write_text((project / EXAMPLE).read_text(encoding="utf-8").replace("owner: alice", "owner: alise"))
    r = shiprail("plan", "validate", BAD, EXAMPLE, "releases/other.yaml")
    assert r.code == 2
    assert r.out == OK_LINE + "\n"
    assert r.err.splitlines() == [
        *BAD_PROBLEMS,
        "releases/other.yaml:5: owner: 'alise' is not a person in shiprail.yaml; add them under people; "
        "did you mean 'alice'?",
    ]


def test_validate_several_files_as_json(shiprail: Any, project: Path) -> None:
    write_bad(project)
    r = shiprail("plan", "validate", "--json", EXAMPLE, BAD)
    assert r.code == 2
    data = r.json()
    assert data["ok"] is False
    assert [(f["file"], f["ok"]) for f in data["files"]] == [(EXAMPLE, True), (BAD, False)]
    assert [p["text"] for p in data["files"][1]["problems"]] == BAD_PROBLEMS


def test_validate_several_valid_files_exits_0(shiprail: Any, project: Path) -> None:
    (project / "releases" / "copy.yaml").write_text((project / EXAMPLE).read_text(encoding="utf-8"))
    r = shiprail("plan", "validate", EXAMPLE, "releases/copy.yaml")
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [OK_LINE, OK_LINE.replace(EXAMPLE, "releases/copy.yaml")]


def test_validate_a_missing_file(shiprail: Any) -> None:
    r = shiprail("plan", "validate", "releases/nope.yaml")
    assert (r.code, r.out, r.err) == (2, "", "releases/nope.yaml: file not found\n")


def test_validate_a_yaml_syntax_error(shiprail: Any, project: Path) -> None:
    (project / BAD).write_text("service: checkout\nscope: [oops\n", encoding="utf-8")
    r = shiprail("plan", "validate", BAD)
    assert (r.code, r.out) == (2, "")
    assert r.err == f"{BAD}:3: YAML syntax error: expected ',' or ']', but got '<stream end>'\n"


def test_validate_against_a_broken_policy_reports_the_policy(shiprail: Any, project: Path) -> None:
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace("window: 24h", "window: 24 hours"))
    r = shiprail("plan", "validate", EXAMPLE)
    assert (r.code, r.out) == (2, "")
    assert r.err == "shiprail.yaml:33: verify.window: a duration like 30s, 5m, 2h or 1d is required, got '24 hours'\n"


def test_a_broken_policy_does_not_hide_the_plans_own_problems_and_is_named_once(shiprail: Any, project: Path) -> None:
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace("window: 24h", "window: 24 hours"))
    text = (project / EXAMPLE).read_text(encoding="utf-8").replace('version: "2.4.0"', 'version: "2.4.0"\nrisk: huge')
    (project / BAD).write_text(text, encoding="utf-8")
    r = shiprail("plan", "validate", EXAMPLE, BAD)
    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines() == [
        "shiprail.yaml:33: verify.window: a duration like 30s, 5m, 2h or 1d is required, got '24 hours'",
        f"{BAD}:4: risk: one of 'low', 'medium', 'high' is required, got 'huge'",
    ]


def test_validate_outside_a_project(
    shiprail: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("nowhere"))
    r = shiprail("plan", "validate", "plan.yaml")
    assert (r.code, r.out) == (2, "")
    assert r.err == "error: no shiprail.yaml found in . or any parent directory; run `shiprail init` to create one\n"
    r = shiprail("plan", "validate", "--json", "plan.yaml")
    assert (r.code, r.err) == (2, "")
    assert r.json() == {
        "ok": False,
        "error": "no shiprail.yaml found in . or any parent directory; run `shiprail init` to create one",
        "exit_code": 2,
    }


def test_validate_without_files_is_a_usage_error(shiprail: Any) -> None:
    r = shiprail("plan", "validate")
    assert r.code == 2
    assert "Missing argument 'FILES...'." in r.err
    assert r.out == ""


# ------------------------------------------------------------------------------------ schema


@pytest.mark.parametrize(
    ("kind", "title", "some_properties"),
    [
        ("plan", "ReleasePlan", {"service", "rollback_contract", "communication", "rollout", "verify"}),
        ("policy", "Policy", {"risk", "gates", "rollout", "contract", "channels", "people"}),
        ("service", "Service", {"name", "router", "provider", "metrics", "defaults"}),
    ],
)
def test_schema_prints_json_schema(shiprail: Any, kind: str, title: str, some_properties: set[str]) -> None:
    r = shiprail("plan", "schema", kind)
    assert (r.code, r.err) == (0, "")
    schema = r.json()
    assert schema["title"] == title
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert some_properties <= set(schema["properties"])


def test_the_plan_schema_marks_required_sections_and_duration_syntax(shiprail: Any) -> None:
    schema = shiprail("plan", "schema").json()  # plan is the default kind
    assert schema["required"] == [
        "service",
        "version",
        "baseline",
        "owner",
        "scope",
        "rollback_contract",
        "communication",
        "verify",
    ]
    window = schema["$defs"]["Trigger"]["properties"]["window"]["anyOf"][0]
    assert window == {"type": "string", "pattern": r"^(?:\d+[smhd])+$", "examples": ["30s", "5m", "2h"]}


def test_schema_of_an_unknown_kind(shiprail: Any) -> None:
    r = shiprail("plan", "schema", "release")
    assert (r.code, r.out) == (2, "")
    assert r.err == "error: KIND must be one of plan, policy, service, got 'release'\n"


def test_schema_of_an_unknown_kind_as_json(shiprail: Any) -> None:
    r = shiprail("plan", "schema", "release", "--json")
    assert (r.code, r.err) == (2, "")
    assert r.json() == {
        "ok": False,
        "error": "KIND must be one of plan, policy, service, got 'release'",
        "exit_code": 2,
    }


# -------------------------------------------------------------------------------------- show


def test_show_json_is_the_resolved_release(shiprail: Any, project: Path) -> None:
    r = shiprail("plan", "show", "--json", EXAMPLE)
    assert (r.code, r.err) == (0, "")
    data = r.json()
    assert {k: data[k] for k in ("service", "version", "baseline", "owner", "risk", "risk_reason")} == {
        "service": "checkout",
        "version": "2.4.0",
        "baseline": "2.3.1",
        "owner": "alice",
        "risk": "high",
        "risk_reason": "tag payments is high-risk in shiprail.yaml",
    }
    assert data["approvals_required"] == 2
    assert data["qa_required"] is True and data["load_test_required"] is True
    assert data["steps"] == [
        {"weight": 1.0, "bake": "30m"},
        {"weight": 10.0, "bake": "2h"},
        {"weight": 50.0, "bake": "4h"},
        {"weight": 100.0, "bake": None},
    ]
    assert data["verify_window"] == 86400
    assert data["on_call"] == "bob"
    assert [t["name"] for t in data["contract"]["triggers"]] == [
        "errors",
        "slow",
        "complaints",
        "error-regression",
        "latency-regression",
    ]
    assert data["contract"]["triggers"][0]["window"] == "5m"
    assert data["plan_hash"] == hashlib.sha256((project / EXAMPLE).read_bytes()).hexdigest()
    contract = json.dumps(data["contract"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data["contract_hash"] == hashlib.sha256(contract.encode()).hexdigest()


def test_show_text(shiprail: Any) -> None:
    r = shiprail("plan", "show", EXAMPLE)
    assert (r.code, r.err) == (0, "")
    lines = r.out.splitlines()
    assert lines[:7] == [
        OK_LINE,
        "  owner alice; on call during verify: bob; verify window 1d",
        "  trigger errors: error_rate above 0.01 over 5m (at least 200 samples)",
        "  trigger slow: latency_p99 above 2 × the baseline's over 5m",
        "  trigger complaints: customer_complaint above 3 over 1h",
        "  trigger error-regression: error_rate worse than the baseline by a regression test (alpha 0.01, min ratio 1)",
        "  trigger latency-regression: latency_p99 worse than the baseline by a regression test "
        "(alpha 0.01, min ratio 1)",
    ]
    assert lines[7].startswith("  contract hash ")
    assert len(lines) == 8
    # The release hash is the hash of the resolved release, as `release show --json` has it once created.
    data = shiprail("plan", "show", EXAMPLE, "--json").json()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    release_hash = hashlib.sha256(canonical.encode()).hexdigest()
    assert lines[7].endswith(f", release hash {release_hash[:16]}…")
    created = shiprail("release", "create", EXAMPLE, "--as", "alice", "--json").json()
    assert created["resolved_hash"] == release_hash


def test_show_text_gives_every_setting_of_a_regression_trigger(shiprail: Any, project: Path) -> None:
    text = (project / EXAMPLE).read_text(encoding="utf-8")
    old = re.search(r"above: 0\.01 .*\n      window: 5m\n", text)
    assert old is not None
    judged = "regression: {alpha: 0.02, min_ratio: 1.5, bursts: tolerate}\n"
    path = project / "releases" / "judged.yaml"
    path.write_text(text.replace(old[0], judged), encoding="utf-8")
    r = shiprail("plan", "show", str(path.relative_to(project)))
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines()[2] == (
        "  trigger errors: error_rate worse than the baseline by a regression test "
        "(alpha 0.02, min ratio 1.5, bursts tolerated) (at least 200 samples)"
    )


def test_show_a_bad_plan(shiprail: Any, project: Path) -> None:
    write_bad(project)
    r = shiprail("plan", "show", BAD)
    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines() == BAD_PROBLEMS


def test_show_a_bad_plan_as_json(shiprail: Any, project: Path) -> None:
    write_bad(project)
    r = shiprail("plan", "show", BAD, "--json")
    assert (r.code, r.err) == (2, "")
    data = r.json()
    assert data["ok"] is False and data["exit_code"] == 2
    assert data["error"] == f"{BAD_PROBLEMS[0]} (and 2 more)"
    assert [p["text"] for p in data["problems"]] == BAD_PROBLEMS
    assert data["problems"][2] == {
        "file": BAD,
        "line": 83,
        "path": "verify.on_call",
        "message": "'bobby' is not a person in shiprail.yaml; add them under people; did you mean 'bob'?",
        "text": BAD_PROBLEMS[2],
    }


# --------------------------------------------------------------- nothing is half-applied


def test_a_bad_plan_creates_no_release_and_no_database(shiprail: Any, project: Path) -> None:
    write_bad(project)
    r = shiprail("release", "create", BAD, "--as", "alice")
    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines() == BAD_PROBLEMS
    assert not (project / ".shiprail").exists()


def test_a_bad_plan_changes_nothing_in_an_existing_store(shiprail: Any, project: Path) -> None:
    created = shiprail("release", "create", EXAMPLE, "--as", "alice", "--json")
    assert created.code == 0
    release_id = created.json()["id"]
    before = shiprail("audit", "verify", "--json").json()
    write_bad(project)

    assert shiprail("release", "create", BAD, "--as", "alice").code == 2
    updated = shiprail("release", "update", release_id, BAD, "--as", "alice")
    assert (updated.code, updated.out) == (2, "")
    assert updated.err.splitlines() == BAD_PROBLEMS

    listed = shiprail("release", "list", "--json").json()
    assert [v["id"] for v in listed] == [release_id]
    shown = shiprail("release", "show", release_id, "--json").json()
    assert shown["plan_hash"] == hashlib.sha256((project / EXAMPLE).read_bytes()).hexdigest()
    after = shiprail("audit", "verify", "--json").json()
    assert after == before
    assert after["ok"] is True and after["events"] == 2  # release.created, approval.awaited


def test_a_plan_for_another_version_is_bad_input_for_update(shiprail: Any, project: Path) -> None:
    release_id = shiprail("release", "create", EXAMPLE, "--as", "alice", "--json").json()["id"]
    other = project / "releases" / "checkout-2.5.0.yaml"
    other.write_text((project / EXAMPLE).read_text().replace('version: "2.4.0"', 'version: "2.5.0"'))
    updated = shiprail("release", "update", release_id, "releases/checkout-2.5.0.yaml", "--as", "alice")
    assert (updated.code, updated.out) == (2, "")
    assert updated.err == (
        f"error: releases/checkout-2.5.0.yaml is for checkout 2.5.0, but release {release_id} is checkout 2.4.0; "
        "create a new release instead\n"
    )


def test_an_update_by_someone_without_the_role_is_refused_naming_the_update(shiprail: Any, project: Path) -> None:
    release_id = shiprail("release", "create", EXAMPLE, "--as", "alice", "--json").json()["id"]
    before = shiprail("audit", "verify", "--json").json()

    updated = shiprail("release", "update", release_id, EXAMPLE, "--as", "bob")

    assert (updated.code, updated.out) == (1, "")
    assert updated.err == (
        # It did not say that the owner may too (alice has no role that lets her, yet may).
        "error: bob may not update this release's plan: that needs the role releaser or executive in shiprail.yaml "
        "(or to be its owner, alice), and bob has approver, oncall\n"
    )
    assert shiprail("audit", "verify", "--json").json() == before


HAPROXY_ROUTER = """router:
  type: haproxy
  socket: /run/haproxy/admin.sock
  backend: checkout
  stable_server: stable
  canary_server: canary
"""
NGINX_ROUTER = """router:
  type: nginx
  include_file: /etc/nginx/shiprail/checkout.conf
  upstream: checkout
  stable: 127.0.0.1:8001
  canary: 127.0.0.1:8002
"""


def test_a_step_the_services_router_cannot_apply_is_refused(shiprail: Any, project: Path) -> None:
    service = project / "services" / "checkout.yaml"
    service.write_text(service.read_text().replace(NGINX_ROUTER, HAPROXY_ROUTER))
    plan = project / EXAMPLE
    plan.write_text(
        plan.read_text().replace(
            "    - {weight: 10, bake: 2h}\n", "    - {weight: 5.25, bake: 1h}\n    - {weight: 10, bake: 2h}\n"
        )
    )

    r = shiprail("plan", "validate", EXAMPLE)

    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines() == [
        f"{EXAMPLE}:77: rollout.steps[1].weight: HAProxy weights go in steps of 0.5%, so 5.25 cannot be applied "
        "exactly; the service's haproxy router cannot apply it"
    ]
    # 5.5 it can: the plan is valid.
    plan.write_text(plan.read_text().replace("weight: 5.25", "weight: 5.5"))
    assert shiprail("plan", "validate", EXAMPLE).code == 0


def test_an_nginx_step_too_small_for_its_hundredths_is_refused(shiprail: Any, project: Path) -> None:
    # nginx rounds to 0.01 %: a 0.001 % step used to be applied as 0 (the canary's server left out of
    # the include file) and read back as applied, so the step baked without any canary traffic.
    plan = project / EXAMPLE
    plan.write_text(
        plan.read_text().replace(
            "    - {weight: 1, bake: 30m}\n", "    - {weight: 0.001, bake: 30m}\n    - {weight: 1, bake: 30m}\n"
        )
    )

    r = shiprail("plan", "validate", EXAMPLE)

    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines() == [
        f"{EXAMPLE}:76: rollout.steps[0].weight: nginx weights go in steps of 0.01%, so 0.001 would send the "
        "canary no traffic; the service's nginx router cannot apply it"
    ]
    plan.write_text(plan.read_text().replace("weight: 0.001", "weight: 0.01"))
    assert shiprail("plan", "validate", EXAMPLE).code == 0


def test_audit_verify_outside_a_project_does_not_invent_an_empty_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    assert main(["audit", "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no shiprail store at ")
    assert not (tmp_path / ".shiprail").exists()


def test_release_list_rejects_an_unknown_status(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert main(["release", "list", "--status", "rolledback"]) == 2
    assert "--status must be one of planned, staging" in capsys.readouterr().err


def test_a_file_shiprail_may_not_read_is_one_sentence_and_exit_1(
    shiprail: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root, chmod 000 does not stop a read; the error a non-root user gets is raised here instead.
    services = project / "services"
    real_is_file = Path.is_file

    def is_file(path: Path) -> bool:
        if path.parent == services:
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    code, out, err = shiprail("plan", "validate", EXAMPLE)
    assert (code, out) == (1, "")
    assert err == (
        f"error: {services / 'checkout.yaml'}: permission denied; give the user running shiprail access to it\n"
    )


def test_a_db_path_in_a_directory_that_does_not_exist_is_refused_not_created(shiprail: Any, tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "sub"
    code, out, err = shiprail("release", "create", EXAMPLE, "--as", "alice", "--db", f"sqlite:///{missing}/x.db")
    assert (code, out) == (2, "")
    assert err == (
        f"error: --db / SHIPRAIL_DATABASE_URL: the directory {tmp_path / 'typo'} does not exist; create it or fix "
        "the path\n"
    )
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["release", "list"],
        ["release", "show", "checkout-2.4.0"],
        ["release", "notes", "checkout-2.4.0"],
        ["signal", "checkout", "customer_complaint", "--as", "alice"],
        ["controller", "--once"],
    ],
)
def test_a_mistyped_db_file_is_refused_not_started_anew(
    shiprail: Any, tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "shiprai.db"
    message = (
        f"error: no shiprail store at {typo}; check --db / SHIPRAIL_DATABASE_URL "
        "(`shiprail release create`, `shiprail serve` and `shiprail migrate` start a new store)\n"
    )
    assert tuple(shiprail(*command, "--db", f"sqlite:///{typo}")) == (2, "", message)
    monkeypatch.setenv("SHIPRAIL_DATABASE_URL", f"sqlite:///{typo}")
    assert tuple(shiprail(*command)) == (2, "", message)
    assert not typo.exists()
    # A new store starts where a release is created.
    assert shiprail("release", "create", EXAMPLE, "--as", "alice").code == 0
    assert typo.is_file()


def test_release_list_shows_whole_ids_and_states_at_80_columns(
    shiprail: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two releases of one plan: checkout-2.4.0 and checkout-2.4.0-2, told apart only by their ends.
    # 80 columns asked for: written to no terminal (pytest's capture), tables are not wrapped at
    # all, so without COLUMNS the width was whatever the test process found (80 under xdist).
    monkeypatch.setenv("COLUMNS", "80")
    for _ in range(2):
        assert shiprail("release", "create", EXAMPLE, "--as", "alice").code == 0
    code, out, _ = shiprail("release", "list")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    rows = [line for line in out.splitlines() if line.startswith("│ checkout")]
    assert [row.split("│")[1].strip() for row in rows] == ["checkout-2.4.0-2", "checkout-2.4.0"]
    assert [row.split("│")[5].strip() for row in rows] == ["planned", "planned"]


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("sslmod=require", 'invalid connection option "sslmod"'),
        ("connect_timeout=soon", "bad value for connect_timeout: 'soon'"),
    ],
)
def test_a_database_url_whose_parameters_the_driver_refuses_is_bad_input(shiprail: Any, query: str, why: str) -> None:
    """psycopg refuses these before connecting: the URL is unusable (exit 2), not a database that failed (exit 1,
    'cannot check or migrate the database', as if a grant were missing)."""
    url = f"postgresql://u:topsecret@127.0.0.1:5432/shiprail?{query}"
    shown = f"postgresql+psycopg://u:***@127.0.0.1:5432/shiprail?{query}"
    for command in (("audit", "verify"), ("release", "list")):
        code, out, err = shiprail(*command, "--db", url)
        assert (code, out) == (2, "")
        assert err == f"error: --db / SHIPRAIL_DATABASE_URL: {shown!r} is not a usable database URL ({why})\n"


def test_a_password_with_an_unencoded_at_sign_is_bad_input_without_any_of_it(shiprail: Any) -> None:
    # The driver took what followed the first '@' for the host and named it: "ret@127.0.0.1".
    for url in ("postgresql://u:s3c@ret@127.0.0.1:5432/db", "postgresql://u@x:s3c@ret@127.0.0.1/db"):
        code, out, err = shiprail("audit", "verify", "--db", url)
        assert (code, out) == (2, "")
        assert err == (
            "error: --db / SHIPRAIL_DATABASE_URL: the URL holds more than one '@' before its host; "
            "percent-encode an '@' in the user name or password as %40\n"
        )
    code, _, err = shiprail("audit", "verify", "--db", "postgresql://u:s3c%40ret@127.0.0.1:1/db")
    assert code == 1 and "ret" not in err  # encoded: an unreachable database, the password hidden


def test_an_unusable_database_url_is_bad_input_without_its_password(shiprail: Any) -> None:
    cases = [
        ("postgresql://u:topsecret@host:notaport/db", "'postgresql+psycopg://u:***@host:notaport/db'"),
        ("postgresql://u:topsecret@[::1/db", "'postgresql+psycopg://u:***@[::1/db'"),
        ("foo://u:topsecret@host/db", "'foo://u:***@host/db'"),
        # A password typed with spaces instead of %20: still the password.
        ("postgresql://u:top secret@host:notaport/db", "'postgresql+psycopg://u:***@host:notaport/db'"),
        ("postgresql://u:x topsecret y@[::1/db", "'postgresql+psycopg://u:***@[::1/db'"),
    ]
    for url, shown in cases:
        code, out, err = shiprail("audit", "verify", "--db", url)
        assert (code, out) == (2, ""), url
        assert err.startswith(f"error: --db / SHIPRAIL_DATABASE_URL: {shown} is not a usable database URL ("), err
        assert "topsecret" not in err and err.count("\n") == 1


def test_a_file_path_given_as_the_database_says_how_to_name_it(
    shiprail: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--db .shiprail/shiprail.db` was refused with SQLAlchemy's "Could not parse SQLAlchemy URL from
    # given URL string": the user learned the path was wrong, not that a URL was wanted, nor which.
    create = ("release", "create", EXAMPLE, "--as", "alice")
    for path, absolute in ((".shiprail/shiprail.db", project / ".shiprail/shiprail.db"), ("/tmp/n.db", "/tmp/n.db")):
        said = (
            f"error: --db / SHIPRAIL_DATABASE_URL: {path!r} is not a database URL; name a SQLite file as "
            f"sqlite:///{absolute} (sqlite:/// and its path), or PostgreSQL as postgresql://user@host/db\n"
        )
        r = shiprail(*create, "--db", path)
        assert (r.code, r.out, r.err) == (2, "", said)
        monkeypatch.setenv("SHIPRAIL_DATABASE_URL", path)
        r = shiprail(*create)
        assert (r.code, r.out, r.err) == (2, "", said)
        monkeypatch.delenv("SHIPRAIL_DATABASE_URL")
    assert not (project / ".shiprail").exists() and not Path("/tmp/n.db").exists()


def test_validate_and_show_say_which_steps_a_person_promotes(shiprail: Any, project: Path) -> None:
    # A reviewer reading the one-line summary must see that the rollout stops for a person.
    plan = project / EXAMPLE
    text = plan.read_text(encoding="utf-8")
    text = text.replace("- {weight: 50, bake: 4h}", "- {weight: 50, bake: 4h, promote: manual}")
    plan.write_text(text.replace("- {weight: 100}", "- {weight: 100, promote: manual}"), encoding="utf-8")
    steps = "rollout 1% 30m → 10% 2h → 50% 4h, promoted by hand → 100%, promoted by hand;"
    assert steps in shiprail("plan", "validate", EXAMPLE).out
    assert steps in shiprail("plan", "show", EXAMPLE).out.splitlines()[0]
    assert shiprail("release", "create", EXAMPLE, "--as", "alice").code == 0
    shown = shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    assert "  rollout: 1% 30m → 10% 2h → 50% 4h, promoted by hand → 100%, promoted by hand" in shown


TRIAL = "    - name: error-regression\n      metric: error_rate\n      regression: {alpha: 0.01}\n      dry_run: true\n"


def test_validate_and_show_count_and_mark_the_dry_runs(shiprail: Any, project: Path) -> None:
    # A reviewer must see that a trigger of the contract is on trial and rolls nothing back.
    plan = project / EXAMPLE
    text = without_regression_triggers(plan.read_text(encoding="utf-8"))  # its thresholds and the trial only
    plan.write_text(text.replace("    - name: complaints\n", TRIAL + "    - name: complaints\n"), encoding="utf-8")
    r = shiprail("plan", "validate", EXAMPLE)
    assert (r.code, r.out, r.err) == (0, OK_LINE.replace("5 triggers", "4 triggers, 1 dry run") + "\n", "")
    shown = shiprail("plan", "show", EXAMPLE).out.splitlines()
    assert shown[0].endswith("; 4 triggers, 1 dry run")
    assert (
        "  trigger error-regression: error_rate worse than the baseline by a regression test (alpha 0.01, "
        "min ratio 1); dry run: judged and reported, never rolls back"
    ) in shown
    assert shiprail("plan", "show", EXAMPLE, "--json").json()["contract"]["triggers"][2]["dry_run"] is True


def test_a_contract_of_dry_runs_only_is_refused_and_exits_2(shiprail: Any, project: Path) -> None:
    plan = project / BAD
    text = (project / EXAMPLE).read_text(encoding="utf-8")
    for line in (
        "      min_samples: 200\n",
        "      above_baseline: 2    # p99 more than twice the baseline's\n",
        "      regression: {alpha: 0.01}\n",  # both regression triggers
    ):
        text = text.replace(line, line + "      dry_run: true\n")
    plan.write_text(text.replace("      window: 1h\n", "      window: 1h\n      dry_run: true\n"), encoding="utf-8")
    r = shiprail("plan", "validate", BAD)
    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines()[0] == (
        f"{BAD}:18: rollback_contract.triggers: every trigger is a dry run (5 with dry_run: true), so nothing would "
        "roll the release back; at least one trigger without dry_run is required"
    )
    assert shiprail("release", "create", BAD, "--as", "alice").code == 2
    assert shiprail("release", "list", "--json").json() == []
