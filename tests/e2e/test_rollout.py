"""Staged rollouts end to end: the real CLI and controller, real routers, a real Prometheus.

Each test starts its own stack (two sample service versions, Prometheus scraping every second,
nginx or HAProxy in front), writes a shiprail project for it, sends steady traffic through the
router, and drives a release with the ``shiprail`` command line in subprocesses. Bakes and the
validation window are a few seconds; the analysis interval is 2 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LoadFactory, StackFactory
from tests.e2e.stack import CANARY, STABLE, Load, Stack, start_prometheus, write_project
from tests.support.processes import free_port, stop, wait_for_port

RATE = 200  # requests a second through the router: 2/s reach a 1% canary
INTERVAL = 2
TRIGGERS = (
    {"name": "errors", "metric": "error_rate", "above": 0.05, "window": "5s", "min_samples": 5},
    {"name": "slow", "metric": "latency_p99", "above_baseline": 3, "window": "5s", "min_samples": 5},
    {"name": "complaints", "signal": "customer_complaint", "above": 0, "window": "1m"},
)


def cli(root: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shiprail.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SHIPRAIL_USER": "alice"},
    )


def ok(root: Path, *args: str) -> str:
    done = cli(root, *args)
    assert done.returncode == 0, f"shiprail {' '.join(args)} exited {done.returncode}: {done.stderr or done.stdout}"
    return done.stdout


def show(root: Path, rid: str) -> dict[str, Any]:
    return json.loads(ok(root, "release", "show", rid, "--json"))  # type: ignore[no-any-return]


def staged(root: Path, stack: Stack, **plan: Any) -> str:
    """A project for ``stack`` with a release created, approved and staged; its id."""
    path = write_project(root, stack, triggers=plan.pop("triggers", TRIGGERS), interval=INTERVAL, **plan)
    rid = json.loads(ok(root, "release", "create", str(path), "--json"))["id"]
    ok(root, "release", "approve", rid, "--as", "bob")
    ok(root, "release", "stage", rid)
    return str(rid)


def start_wait(root: Path, rid: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shiprail.cli.main", "release", "start", rid, "--wait", "--json"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SHIPRAIL_USER": "alice"},
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, dict[str, Any]]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the release did not end within {timeout:g}s: {err[-2000:]}") from None
    assert out.strip(), f"no output (exit {proc.returncode}): {err[-2000:]}"
    return proc.returncode, json.loads(out)


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def events(root: Path, rid: str) -> list[dict[str, Any]]:
    out = root / "audit.jsonl"
    ok(root, "audit", "export", "--out", str(out))
    return [e for e in map(json.loads, out.read_text().splitlines()) if e.get("release_id") == rid]


def applied_weights(root: Path, rid: str) -> list[float]:
    return [e["payload"]["weight"] for e in events(root, rid) if e["kind"] == "router.applied"]


def assert_no_canary_after_revert(load: Load, view: dict[str, Any]) -> None:
    """Once the rollback is confirmed (plus nginx's old worker draining), no client sees the canary."""
    confirmed = view["rollbacks"][0]["revert_confirmed_at"]
    assert confirmed is not None
    time.sleep(0.5)
    t = time.monotonic() - 0.3
    assert load.share_since(t).get(CANARY, 0) == 0
    assert load.share_since(t).get(STABLE, 0) > 0


@pytest.mark.parametrize("router", ["nginx", "haproxy"])
def test_a_healthy_release_goes_through_every_step_and_completes(
    router: str, stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    from tests.support.sample_service import SampleService

    stack = stack_factory(router)  # type: ignore[arg-type]
    load = load_factory(stack.url, rate=RATE)
    root = tmp_path / "project"
    # A key user flow probed through the validation window: green all along, so Verify completes.
    with SampleService("flow") as flow:
        rid = staged(root, stack, probes=True, probe_url=f"{flow.url}/checkout/probe", verify_window=3)
        code, view = finish(start_wait(root, rid))
    assert (code, view["status"]) == (0, "complete"), view.get("last_analysis")
    probes = [r for r in view["last_analysis"]["results"] if r["trigger"].startswith("probe ")]
    assert [p["verdict"] for p in probes] == ["pass"]
    assert applied_weights(root, rid) == [1, 10, 50, 100]
    promotes = [e["payload"]["to"] for e in events(root, rid) if e["kind"] == "release.transitioned"]
    assert promotes[-5:] == [
        "rolling_out (step 2)",
        "rolling_out (step 3)",
        "rolling_out (step 4)",
        "verifying",
        "complete",
    ]
    assert stack.build_router().current_weight() == 100
    time.sleep(0.5)
    assert load.share_since(time.monotonic() - 0.3).get(STABLE, 0) == 0
    assert ok(root, "audit", "verify").startswith("audit chain ok")


def test_an_error_canary_rolls_back_at_1_percent(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    stack = stack_factory("nginx")
    load = load_factory(stack.url, rate=RATE)
    assert stack.canary is not None
    stack.canary.inject(error_rate=0.5)
    root = tmp_path / "project"
    rid = staged(root, stack)
    code, view = finish(start_wait(root, rid))
    assert (code, view["status"]) == (1, "rolled_back")
    [log] = view["rollbacks"]
    assert (log["cause"], log["trigger"], log["weight_before"], log["threshold"]) == ("trigger", "errors", 1, 0.05)
    assert log["value"] > 0.05
    assert log["max_duration_met"] is True
    assert applied_weights(root, rid) == [1, 0]
    assert_no_canary_after_revert(load, view)
    text = ok(root, "release", "show", rid)
    assert "rollback #1 (trigger errors" in text
    assert "detected → confirmed in" in text


def test_a_slow_canary_rolls_back_by_latency_against_the_baseline(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    stack = stack_factory("haproxy")
    load = load_factory(stack.url, rate=RATE)
    assert stack.canary is not None
    stack.canary.inject(latency_s=0.3)
    root = tmp_path / "project"
    rid = staged(root, stack)
    code, view = finish(start_wait(root, rid))
    assert (code, view["status"]) == (1, "rolled_back")
    [log] = view["rollbacks"]
    assert log["trigger"] == "slow"
    assert log["value"] > 3 * view["rollbacks"][0]["metrics_after"][1]["baseline"]["value"]
    assert_no_canary_after_revert(load, view)


def judged_rollback(
    stack: Stack,
    load_factory: LoadFactory,
    root: Path,
    name: str,
    metric: str,
    others: tuple[dict[str, Any], ...] = TRIGGERS,
    **plan: Any,
) -> dict[str, Any]:
    """Drive a release with a regression trigger ``name`` on ``metric`` (α 0.01), beside ``others``, to its rollback."""
    load_factory(stack.url, rate=RATE)
    regression = {"name": name, "metric": metric, "regression": {"alpha": 0.01}}
    rid = staged(root, stack, triggers=(*others, regression), **plan)
    code, view = finish(start_wait(root, rid))
    assert (code, view["status"]) == (1, "rolled_back")
    [log] = view["rollbacks"]
    assert log["trigger"] == name
    assert applied_weights(root, rid)[-1] == 0
    return log


def test_a_canary_6_ms_slower_is_caught_by_the_sequential_judge_from_its_buckets(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    # The canary's requests move from the ≤ 5 ms bucket to (5, 10] ms, and the order test on the
    # buckets, read through Prometheus' increase(), sees every one of them. The p99 threshold
    # (`slow`, above_baseline: 3) is left out: over a 1 % canary's ~10 requests in its window, p99
    # is about the slowest one, so on a loaded machine a single request delayed by 4 ms more
    # crosses 3× the baseline's and the threshold fires on the machine's jitter (seen on CI), as
    # likely as on the regression. That noise is what the judge is for; it must not decide a test.
    stack = stack_factory("nginx")
    assert stack.canary is not None
    stack.canary.inject(latency_s=0.006)
    others = tuple(t for t in TRIGGERS if t["name"] != "slow")
    log = judged_rollback(stack, load_factory, tmp_path / "project", "latency-regression", "latency_p99", others)
    assert "canary slower than baseline: slower than 0.005s" in log["reason"]
    assert "p99" not in log["reason"]
    # Here it fires at the 1 % step (p ≈ 10⁻⁹ at ~2 canary requests a second); a slower machine may
    # take it to 10 %, and that is still the judge's catch.
    assert log["weight_before"] in (1, 10)


def test_a_canary_failing_3_percent_is_caught_by_the_sequential_judge_under_a_5_percent_threshold(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    # 3 % errors against the baseline's none: under the contract's absolute 5 % limit, so only the
    # rate test (counts from Prometheus: increase() of the request counter) can see it.
    stack = stack_factory("haproxy")
    assert stack.canary is not None
    stack.canary.inject(error_rate=0.03)
    # Bakes long enough for the evidence: at 10 % the canary fails ~0.6 requests a second, each
    # worth at most ×10 (its share is 1/10), and 1/α is 100.
    log = judged_rollback(stack, load_factory, tmp_path / "project", "error-regression", "error_rate", bakes=(2, 10, 4))
    assert "canary worse than baseline: canary " in log["reason"]


def test_complaints_posted_during_a_step_roll_back(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    stack = stack_factory("haproxy")
    load = load_factory(stack.url, rate=RATE)
    root = tmp_path / "project"
    rid = staged(root, stack, bakes=(2, 30, 2))
    proc = start_wait(root, rid)
    try:
        wait_until("the 10% step", lambda: show(root, rid)["progress"].get("applied_weight") == 10)
        ok(root, "signal", "checkout", "customer_complaint", "--note", "card declined twice", "--as", "support")
        code, view = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (code, view["status"]) == (1, "rolled_back")
    [log] = view["rollbacks"]
    assert (log["trigger"], log["value"], log["weight_before"]) == ("complaints", 1, 10)
    assert_no_canary_after_revert(load, view)


def test_prometheus_stopped_mid_step_pauses_and_resumes_when_it_returns(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    stack = stack_factory("nginx")
    load_factory(stack.url, rate=RATE)
    root = tmp_path / "project"
    rid = staged(root, stack, bakes=(2, 6, 2))
    proc = start_wait(root, rid)
    try:
        wait_until("the 10% step", lambda: show(root, rid)["progress"].get("applied_weight") == 10)
        prometheus = stack.prometheus
        assert prometheus is not None
        args = list(prometheus.proc.args)  # type: ignore[arg-type]
        stop(prometheus.proc)
        wait_until("the pause", lambda: show(root, rid)["status"] == "paused", timeout=30)
        paused = show(root, rid)
        assert "inconclusive" in json.dumps(paused["last_analysis"])
        with prometheus.log.open("ab") as out:
            again = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        stack.procs.append(again)
        code, view = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (code, view["status"]) == (0, "complete")
    moves = [e["payload"]["action"] for e in events(root, rid) if e["kind"] == "release.transitioned"]
    assert "pause" in moves and "resume" in moves
    assert moves.index("resume") > moves.index("pause")
    assert applied_weights(root, rid) == [1, 10, 50, 100]


ROUTE_SCRIPT = textwrap.dedent(
    '''\
    """A user's router script: sets HAProxy weights over the admin socket, logs each call."""
    import os, socket, sys

    SOCKET, LOG = sys.argv[1], sys.argv[2]

    def command(line):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(SOCKET)
            s.sendall((line + "\\n").encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.decode()

    if sys.argv[3] == "set":
        weight = float(os.environ["SHIPRAIL_WEIGHT"])
        canary = round(weight * 2)
        command(f"set server checkout/canary weight {canary}")
        command(f"set server checkout/stable weight {200 - canary}")
        with open(LOG, "a") as log:
            log.write(f"{weight:g}\\n")
    else:
        stable = int(command("get weight checkout/stable").split()[0])
        canary = int(command("get weight checkout/canary").split()[0])
        print(100 * canary / (stable + canary))
    '''
)


def test_a_controller_killed_mid_step_is_restarted_and_applies_each_weight_once(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    stack = stack_factory("haproxy")
    load_factory(stack.url, rate=RATE)
    root = tmp_path / "project"
    path = write_project(root, stack, triggers=TRIGGERS, interval=INTERVAL, bakes=(2, 6, 2))
    socket_path = stack.router_settings()["socket"]
    calls = root / "router-calls.log"
    (root / "route.py").write_text(ROUTE_SCRIPT)
    service = root / "services" / "checkout.yaml"
    text = service.read_text()
    head, _, rest = text.partition("router:\n")
    rest = rest[rest.index("provider:") :]
    run = f"{sys.executable} {root / 'route.py'} {socket_path} {calls}"
    service.write_text(f'{head}router:\n  type: command\n  set: "{run} set"\n  get: "{run} get"\n{rest}')
    rid = json.loads(ok(root, "release", "create", str(path), "--json"))["id"]
    ok(root, "release", "approve", rid, "--as", "bob")
    ok(root, "release", "stage", rid)
    ok(root, "release", "start", rid)

    logs: list[Path] = []

    def controller() -> subprocess.Popen[str]:
        out = root / f"controller{len(logs)}.log"
        logs.append(out)
        with out.open("w") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "shiprail.cli.main", "controller", "--poll", "0.2", "--lease", "5"],
                cwd=root,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def explain() -> str:
        view = show(root, rid)
        tails = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text().splitlines()[-25:]) for p in logs)
        return f"{view['state']}, progress {view['progress']}, last analysis {view['last_analysis']}\n{tails}"

    first = controller()
    try:
        wait_until("the 10% step", lambda: show(root, rid)["progress"].get("applied_weight") == 10)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = controller()
        try:
            try:
                wait_until("the end of the release", lambda: show(root, rid)["status"] == "complete", timeout=150)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {explain()}") from None
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            first.kill()
    assert calls.read_text().split() == ["1", "10", "50", "100"]
    assert applied_weights(root, rid) == [1, 10, 50, 100]
    holders = {e["payload"]["holder"] for e in events(root, rid) if e["kind"] == "controller.attached"}
    assert len(holders) == 2
    assert ok(root, "audit", "verify").startswith("audit chain ok")


def test_verify_probes_a_key_flow_and_rolls_back_when_it_breaks_mid_window(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    from tests.support.sample_service import SampleService

    stack = stack_factory("haproxy")
    load_factory(stack.url, rate=RATE)
    with SampleService("flow") as flow:
        root = tmp_path / "project"
        rid = staged(root, stack, probes=True, probe_url=f"{flow.url}/checkout/probe", verify_window=20)
        proc = start_wait(root, rid)
        wait_until("the validation window", lambda: show(root, rid)["status"] == "verifying", timeout=90)
        # The key user flow breaks while the window runs: the probe must take the release back.
        flow.inject(error_rate=1.0)
        code, view = finish(proc)
    assert (code, view["status"]) == (1, "rolled_back")
    [log] = view["rollbacks"]
    assert log["trigger"] == "probe checkout through the router"
    assert log["weight_before"] == 100
    assert [e["payload"]["on_call"] for e in events(root, rid) if e["kind"] == "verify.started"] == ["bob"]


def documented_rules(into: Path) -> Path:
    """The alerting rules docs/operations.md shows, as a rules file Prometheus loads."""
    text = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text[text.index("### Watching releases in Prometheus") :]
    rules = section[
        section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml\n") + 8)
    ]
    into.write_text(rules, encoding="utf-8")
    return into


def test_prometheus_scrapes_each_driven_release_and_the_documented_alert_fires_on_a_rollback(
    stack_factory: StackFactory, load_factory: LoadFactory, tmp_path: Path
) -> None:
    stack = stack_factory("nginx")
    load_factory(stack.url, rate=RATE)
    assert stack.canary is not None
    root = tmp_path / "project"
    rid = staged(root, stack, bakes=(2, 600, 2))  # it stays at 10 % until the canary turns bad
    ok(root, "release", "start", rid)
    port = free_port()
    started: list[subprocess.Popen[Any]] = []
    with (root / "controller.log").open("w") as sink:
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "shiprail.cli.main", "controller", "--poll", "0.2", "--metrics-port", str(port)],
                cwd=root,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        wait_for_port(port, started[0], root / "controller.log", timeout=30)
        rules = documented_rules(tmp_path / "rules.yml")
        prom = start_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"], started.append, rule_files=[rules])
        one = f'release="{rid}",service="checkout"'

        def value(promql: str) -> float | None:
            result = prom.query(promql)
            return float(result[0]["value"][1]) if result else None

        wait_until("Prometheus to see the 10% step", lambda: value(f"shiprail_release_canary_weight{{{one}}}") == 10)
        assert value(f'shiprail_release_info{{{one},version="{CANARY}",baseline="{STABLE}",status="rolling_out"}}') == 1
        assert value(f"shiprail_release_step{{{one}}}") == 2
        assert value(f'shiprail_release_trigger_verdict{{{one},trigger="errors",verdict="pass"}}') == 1
        assert value('shiprail_controller_releases_finished_total{service="checkout",status="rolled_back"}') == 0
        stack.canary.inject(error_rate=0.5)
        wait_until("the rollback", lambda: show(root, rid)["status"] == "rolled_back")

        def fired() -> list[dict[str, Any]]:
            alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "ReleaseRolledBack"]

        wait_until("the documented ReleaseRolledBack alert", lambda: bool(fired()), timeout=30)
        [alert] = fired()
        assert (alert["labels"]["service"], alert["state"]) == ("checkout", "firing")
        # Let go of by the controller: its series are gone from the next scrape (stale), not frozen.
        wait_until("the release's series to go", lambda: not prom.query(f"shiprail_release_info{{{one}}}"))
    finally:
        for proc in reversed(started):
            stop(proc)
