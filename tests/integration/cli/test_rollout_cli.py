"""``shiprail release start | promote | pause | resume | rollback`` and ``shiprail controller`` in-process.

The example project's router points at an nginx that is not there, so the controller's router
calls fail here: that is how a rollback whose weight cannot be confirmed is shown (never done).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from shiprail.cli.context import open_store
from shiprail.clock import WallClock
from shiprail.controller import leases
from shiprail.domain.states import Action
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.store.db import Store
from shiprail.store.models import ControllerPresence

PLAN = "releases/checkout-2.4.0.yaml"
REASON = "Carol is out sick; Bob reviewed the whole diff twice"


@pytest.fixture(autouse=True)
def as_alice(shiprail: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands here act as alice unless they say --as (set after ``shiprail`` clears it)."""
    monkeypatch.setenv("SHIPRAIL_USER", "alice")


def staged(shiprail: Any) -> str:
    """A medium-risk release of the example plan without stage checks, approved and staged."""
    text = Path(PLAN).read_text()
    text = text.replace("tags: [payments]", "tags: [checkout]")
    Path(PLAN).write_text(text[: text.index("stage:")] + text[text.index("rollout:") :])
    code, out, err = shiprail("release", "create", PLAN, "--json")
    assert code == 0, err
    rid = json.loads(out)["id"]
    assert shiprail("release", "approve", rid, "--as", "bob").code == 0
    assert shiprail("release", "stage", rid).code == 0
    return str(rid)


def test_a_release_resumed_into_staging_does_not_say_it_waits_for_a_controller(shiprail: Any) -> None:
    # Paused in Stage and resumed, it said "no controller is running: the release moves on only
    # while one runs", but no controller moves a release in Stage: `release start` does.
    rid = staged(shiprail)
    assert shiprail("release", "pause", rid, "--as", "bob").out == f"{rid} is now paused (from staging)\n"
    assert shiprail("release", "resume", rid, "--as", "bob").out == f"{rid} is now staging\n"


def test_a_rollback_from_stage_does_not_say_a_canary_keeps_traffic(shiprail: Any) -> None:
    # Rolled back in Stage it said "the canary keeps its traffic until one runs", though no traffic
    # had moved: the release only waits, rolling_back, for a controller to confirm weight 0.
    rid = staged(shiprail)
    assert shiprail("release", "pause", rid, "--as", "bob").code == 0
    assert shiprail("release", "rollback", rid, "--reason", "not this week", "--as", "bob").out == (
        f"{rid} is now rolling_back\n"
        "no controller is running: the release stays rolling_back until one runs and the router confirms weight 0 "
        "(`shiprail controller`, or `shiprail controller --once`)\n"
    )


def test_start_by_plan_file_then_pause_resume_and_roll_back(shiprail: Any) -> None:
    rid = staged(shiprail)
    code, out, err = shiprail("release", "start", PLAN)
    assert code == 0, err
    assert out.startswith(f"started {rid}: the controller now takes it to 1%")
    assert shiprail("release", "pause", rid, "--reason", "dashboards look odd", "--as", "bob").out == (
        f"{rid} is now paused (from rolling_out)\n"
    )
    # No controller runs here: saying only "is now rolling_back" let a person think the canary was off.
    assert shiprail("release", "resume", rid, "--as", "bob").out == (
        f"{rid} is now rolling_out (step 1)\n"
        "no controller is running: the release moves on only while one runs "
        "(`shiprail controller`, or `shiprail controller --once`)\n"
    )
    code, out, err = shiprail("release", "rollback", rid, "--reason", "pager: 5xx on checkout", "--as", "bob")
    assert (code, out) == (
        0,
        f"{rid} is now rolling_back\n"
        "no controller is running: the canary keeps its traffic until one runs and the router confirms weight 0 "
        "(`shiprail controller`, or `shiprail controller --once`)\n",
    )
    view = shiprail("release", "show", rid, "--json").json()
    [log] = view["rollbacks"]
    assert (log["cause"], log["initiated_by"], log["reason"], log["revert_confirmed_at"]) == (
        "manual",
        "bob",
        "pager: 5xx on checkout",
        None,
    )
    text = shiprail("release", "show", rid).out
    assert "rollback #1 (manual) by bob" in text
    assert "the router has not confirmed weight 0 yet" in text


def test_a_rollback_the_router_cannot_confirm_is_never_reported_done(shiprail: Any) -> None:
    rid = staged(shiprail)
    shiprail("release", "start", rid)
    shiprail("release", "rollback", rid, "--as", "bob")
    code, _, err = shiprail("controller", "--once", "--quiet")
    assert code == 1  # a cron job running --once learns that the router fails
    view = shiprail("release", "show", rid, "--json").json()
    assert view["status"] == "rolling_back"
    assert view["rollbacks"][0]["revert_confirmed_at"] is None
    # What the router keeps failing at, where people look: release show, its JSON, --wait's progress.
    trouble = view["router_trouble"]
    # The tour project's nginx router: no include directory here (its reason depends on the machine).
    error = trouble["error"]
    assert (trouble["weight"], trouble["attempts"], bool(error)) == (0, 4, True)
    assert trouble["since"] == view["rollbacks"][0]["revert_started_at"]
    since = f"{trouble['since'][:10]} {trouble['since'][11:19]}Z"
    line = f"router: cannot apply 0% (4 attempts since {since}, retried with backoff): {error}"
    assert line in " ".join(shiprail("release", "show", rid).out.split())
    assert err.startswith(f"error: the router cannot apply 0% for {rid} (retried with backoff, next at ")
    assert err.rstrip().endswith(f"): {error}")
    # The next run within the backoff calls no router, and still says the release is stuck.
    code, _, again = shiprail("controller", "--once", "--quiet")
    assert (code, again) == (1, err)
    assert shiprail("release", "show", rid, "--json").json()["router_trouble"]["attempts"] == 4


def test_lifecycle_commands_refuse_what_the_state_does_not_allow(shiprail: Any) -> None:
    rid = staged(shiprail)
    code, _, err = shiprail("release", "promote", rid)
    assert code == 1
    assert err.startswith("error: ")
    assert "promote" in err and "staging" in err
    shiprail("release", "start", rid)
    code, _, err = shiprail("release", "promote", rid)
    assert code == 1
    assert "gate bake failed (1% has 30m of its 30m bake left)" in err
    assert "(failed: bake, analysis); no controller is running" in err
    code, _, err = shiprail("release", "start", rid)
    assert (code, err) == (
        1,
        f"error: release {rid} is rolling_out (step 1); only a release in staging can start; it started before: "
        f"`shiprail release start {rid} --wait` follows it, `shiprail release show {rid}` shows it\n",
    )
    assert shiprail("release", "pause", rid, "--as", "bob").code == 0
    code, _, err = shiprail("release", "start", rid)
    assert (code, err) == (
        1,
        f"error: release {rid} is paused (from rolling_out); only a release in staging can start; it started "
        f"before and is paused: `shiprail release resume {rid}` carries on\n",
    )


def test_start_of_a_release_paused_in_stage_does_not_say_it_started_before(shiprail: Any) -> None:
    # Paused in Stage, it never started: "it started before and is paused: resume carries on" sent
    # people to resume and wait for a rollout that resume does not begin.
    rid = staged(shiprail)
    assert shiprail("release", "pause", rid, "--as", "bob").code == 0
    code, _, err = shiprail("release", "start", rid)
    assert (code, err) == (
        1,
        f"error: release {rid} is paused (from staging); only a release in staging can start; it is paused in "
        f"Stage: `shiprail release resume {rid}`, then `shiprail release start {rid}`\n",
    )


def test_pause_needs_a_role(shiprail: Any) -> None:
    rid = staged(shiprail)
    shiprail("release", "start", rid)
    code, _, err = shiprail("release", "pause", rid, "--as", "carol")
    assert code == 1
    assert "carol may not pause this release" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--poll", "0"], "error: --poll takes a number of seconds, above 0 and at most 366 days (31622400), got 0\n"),
        (
            ["--poll", "nan"],
            "error: --poll takes a number of seconds, above 0 and at most 366 days (31622400), got nan\n",
        ),
        (
            ["--lease", "1e308", "--once"],
            "error: --lease takes a number of seconds, above 0 and at most 366 days (31622400), got 1e+308\n",
        ),
        (
            ["--metrics-host", "999.1.1.1", "--metrics-port", "0"],
            "error: --metrics-host 999.1.1.1 --metrics-port 0: cannot listen there (",
        ),
        (["--poll", "2", "--lease", "1"], "error: --lease (1s) must be longer than --poll (2s), or leases lapse"),
        (["--once", "--metrics-port", "0"], "error: --metrics-port serves a running controller; drop it with --once\n"),
    ],
)
def test_controller_flags_are_checked(shiprail: Any, args: list[str], message: str) -> None:
    code, _, err = shiprail("controller", *args)
    assert code == 2
    assert err.startswith(message)


def test_start_wait_gives_up_after_its_timeout_and_leaves_the_release_as_it_is(shiprail: Any) -> None:
    rid = staged(shiprail)
    code, out, err = shiprail("release", "start", rid, "--wait", "--timeout", "1", "--json")
    assert code == 1
    assert json.loads(out)["status"] == "rolling_out"
    assert err.rstrip().endswith(
        f"error: stopped following {rid} after --timeout 1s: it is rolling_out (step 1); a running "
        "`shiprail controller` carries it on"
    )
    assert "router at –: no analysis yet" in err  # progress went to stderr, one line per change
    # Why it went nowhere, in the progress: the tour project's nginx router cannot work here.
    assert "router at –: no analysis yet; the router cannot apply 1%: " in err
    # And that the communication plan's Slack channel could not be told: once, not at every retry.
    [told] = [line for line in err.splitlines() if "notification not sent:" in line and "via releases-slack" in line]
    assert told.endswith(
        "(the Slack webhook URL is missing: set SHIPRAIL_SLACK_URL where the notifier runs (channel releases-slack))"
    )


def started_beside_another(shiprail: Any, project: Path) -> tuple[str, Store]:
    """A started release of the example plan, another one (checkout-2.4.9) planned beside it, and the store."""
    other = project / "releases" / "checkout-2.4.9.yaml"
    other.write_text((project / PLAN).read_text().replace('version: "2.4.0"', 'version: "2.4.9"'))
    assert shiprail("release", "create", str(other)).code == 0
    rid = staged(shiprail)
    assert shiprail("release", "start", rid).code == 0
    return rid, open_store(None, Path.cwd())


def test_a_controller_driving_only_another_release_does_not_hide_that_none_drives_this_one(
    shiprail: Any, project: Path
) -> None:
    # A `release start --wait` of another release (a lease on that release, no presence) counted
    # as a running controller: the rollback said nothing while nobody would revert it.
    rid, store = started_beside_another(shiprail, project)
    assert leases.acquire(store, "checkout-2.4.9", "ci-job", WallClock().now(), 600)
    code, out, _ = shiprail("release", "rollback", rid, "--reason", "pager: 5xx on checkout", "--as", "bob")
    assert (code, out) == (
        0,
        f"{rid} is now rolling_back\n"
        "no controller is running: the canary keeps its traffic until one runs and the router confirms weight 0 "
        "(`shiprail controller`, or `shiprail controller --once`)\n",
    )


def test_start_wait_prints_a_channel_error_as_it_was_answered(
    shiprail: Any, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    # The error a channel answered was printed as Rich markup: '[/error]' in a webhook's answer
    # raised a MarkupError in the notifier's thread (a traceback, no line), and '[maintenance]' was eaten.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Down(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"[maintenance] down [/error]"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SHIPRAIL_SLACK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    try:
        rid = staged(shiprail)
        code, _, err = shiprail("release", "start", rid, "--wait", "--timeout", "1", "--json")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    told = [line for line in err.splitlines() if "notification not sent:" in line and "via releases-slack" in line]
    assert told and told[0].endswith(": [maintenance] down [/error])")
    assert not [w for w in recwarn if "Thread" in type(w.message).__name__]


def test_start_wait_stops_when_a_person_pauses_the_release(shiprail: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a person resumes a manual pause: --wait without --timeout used to hang a CI job for ever.
    from shiprail.controller.reconciler import Controller

    rid = staged(shiprail)
    ticked = Controller.tick
    store = open_store(None, Path.cwd())

    def tick_then_pause(self: Controller) -> datetime | None:
        wake = ticked(self)
        svc = Releases(store, WallClock(), open_project(Path.cwd()).policy)
        if svc.get(rid).status == "rolling_out":
            svc.act(rid, Action.PAUSE, "alice", reason="dashboards look odd")
        return wake

    monkeypatch.setattr(Controller, "tick", tick_then_pause)
    try:
        code, out, err = shiprail("release", "start", rid, "--wait", "--timeout", "60", "--json")
    finally:
        store.close()
    assert code == 1
    assert json.loads(out)["status"] == "paused"
    assert err.rstrip().endswith(
        f"error: stopped following {rid}: it was paused by hand and waits for `shiprail release resume {rid}`; "
        "its contract is analysed (and a breach rolls it back) only while a `shiprail controller` runs"
    )


def test_start_wait_says_why_a_held_rollout_is_not_moving(shiprail: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A step held by a deployment freeze may wait for hours: --wait's log said nothing of it.
    from shiprail.controller.reconciler import Controller

    rid = staged(shiprail)
    ticked = Controller.tick
    store = open_store(None, Path.cwd())
    why = "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"

    def tick_held_then_pause(self: Controller) -> datetime | None:
        wake = ticked(self)
        svc = Releases(store, WallClock(), open_project(Path.cwd()).policy)
        if svc.get(rid).status == "rolling_out":
            assert self.on_event is not None
            self.on_event(rid, "release.held", {"gate": "freeze", "reason": why})  # as _announce_hold records it
            svc.act(rid, Action.PAUSE, "alice", reason="dashboards look odd")
        return wake

    monkeypatch.setattr(Controller, "tick", tick_held_then_pause)
    try:
        code, _, err = shiprail("release", "start", rid, "--wait", "--timeout", "60", "--json")
    finally:
        store.close()
    assert code == 1
    assert [line[9:] for line in err.splitlines() if "held" in line] == [f"held: {why}"]


def test_start_wait_rides_out_the_database_going_away(shiprail: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The database restarting under `release start --wait` ended it with exit 1, "the database failed",
    # the status a rollback exits with: a CI job failed the release. It now looks again, as a controller does.
    from sqlalchemy.exc import OperationalError

    from shiprail.controller.reconciler import Controller

    rid = staged(shiprail)
    ticked = Controller.tick
    store = open_store(None, Path.cwd())
    calls = {"n": 0}

    def away_then_pause(self: Controller) -> datetime | None:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise OperationalError("SELECT 1", {}, Exception("consuming input failed: server closed the connection"))
        wake = ticked(self)
        svc = Releases(store, WallClock(), open_project(Path.cwd()).policy)
        if calls["n"] >= 4 and svc.get(rid).status == "rolling_out":
            svc.act(rid, Action.PAUSE, "alice", reason="dashboards look odd")
        return wake

    monkeypatch.setattr(Controller, "tick", away_then_pause)
    try:
        code, out, err = shiprail("release", "start", rid, "--wait", "--timeout", "60", "--json")
    finally:
        store.close()
    assert (code, json.loads(out)["status"]) == (1, "paused")
    lines = [line[9:] for line in err.splitlines() if "store" in line]
    assert lines == [
        "cannot reach the store: consuming input failed: server closed the connection; looking again",
        "the store answers again",
    ]
    assert err.rstrip().endswith(
        f"error: stopped following {rid}: it was paused by hand and waits for "
        f"`shiprail release resume {rid}`; its contract is analysed (and a breach rolls it back) only while a "
        "`shiprail controller` runs"
    )


def test_start_wait_ending_while_the_database_is_away_prints_no_traceback(
    shiprail: Any, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    # The last delivery --wait gives the notifier ran in a thread that died with a traceback when the
    # store could not be reached (a --timeout during an outage): now one line says what stays queued.
    from sqlalchemy.exc import OperationalError

    from shiprail.notifiers.notifier import Notifier

    def away(self: Notifier, *, wait: bool = True) -> datetime | None:
        raise OperationalError("SELECT 1", {}, Exception("connection failed: Connection refused"))

    monkeypatch.setattr(Notifier, "tick", away)
    rid = staged(shiprail)
    code, _, err = shiprail("release", "start", rid, "--wait", "--timeout", "1", "--json")
    assert code == 1
    [line] = [line for line in err.splitlines() if "stay queued" in line]
    assert line[9:] == (
        "notifications due now stay queued for a controller: cannot reach the store: connection failed: "
        "Connection refused"
    )
    assert "Traceback" not in err
    assert not [w for w in recwarn if "Thread" in type(w.message).__name__]


def test_controller_once_exits_1_when_a_release_could_not_be_reconciled(
    shiprail: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shiprail.controller.reconciler import Controller

    rid = staged(shiprail)
    shiprail("release", "start", rid)

    def broken(self: Controller, release_id: str) -> None:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(Controller, "reconcile", broken)
    code, _, err = shiprail("controller", "--once", "--quiet")
    assert code == 1
    why = "the log above says why (and its controller.error event, unless the store failed)"
    assert err.endswith(f"error: reconcile failed for {rid}: {why}\n")


def test_start_wait_refuses_a_planned_release_like_start(shiprail: Any) -> None:
    code, out, _ = shiprail("release", "create", PLAN, "--json")
    rid = json.loads(out)["id"]
    code, out, err = shiprail("release", "start", rid, "--wait")
    # It said only "… is planned; only a release in staging can start", not what to do.
    assert (code, out, err) == (
        1,
        "",
        f"error: release {rid} is planned; only a release in staging can start; stage it first: "
        f"`shiprail release stage {rid}` (its approvals gate must pass)\n",
    )


def test_override_of_an_unknown_gate_is_bad_input(shiprail: Any) -> None:
    code, out, _ = shiprail("release", "create", PLAN, "--json")
    rid = json.loads(out)["id"]
    code, _, err = shiprail("release", "override", rid, "--as", "dana", "--reason", REASON, "--gate", "aprovals")
    assert (code, err) == (2, "error: --gate 'aprovals' is not a gate; the gates of stage are approvals\n")
    assert shiprail("release", "show", rid, "--json").json()["gates"] == []


def test_override_of_an_unknown_gate_named_twice_with_references_says_it_is_no_gate(shiprail: Any) -> None:
    # It said "name two refusals of gate foo" first, as if foo were a gate and the references the mistake.
    code, out, _ = shiprail("release", "create", PLAN, "--json")
    rid = json.loads(out)["id"]
    args = ("release", "override", rid, "--as", "dana", "--reason", REASON, "--gate", "foo@1", "--gate", "foo@2")
    code, _, err = shiprail(*args)
    assert (code, err) == (2, "error: --gate 'foo' is not a gate; the gates of stage are approvals\n")
    assert shiprail("release", "show", rid, "--json").json()["gates"] == []


def test_an_override_reason_too_short_is_bad_input_and_changes_nothing(shiprail: Any) -> None:
    code, out, _ = shiprail("release", "create", PLAN, "--json")
    rid = json.loads(out)["id"]
    before = shiprail("release", "show", rid, "--json").json()
    code, _, err = shiprail("release", "override", rid, "--as", "dana", "--reason", "lgtm")
    assert (code, err) == (
        2,
        "error: --reason must explain the override in at least 15 characters; it goes into the audit trail and "
        "opens a post-mortem\n",
    )
    assert shiprail("release", "show", rid, "--json").json() == before


def test_controllers_lists_who_drives_what_and_release_show_names_its_controller(shiprail: Any) -> None:
    rid = staged(shiprail)
    assert shiprail("release", "start", rid).code == 0
    assert shiprail("controllers").out == "no controller is running\n"
    store = open_store(None)
    now = datetime.now(UTC)
    try:
        assert leases.announce(store, "host-a:41:9f", now, 3600) == 1
        assert leases.announce(store, "host-b:42:7c", now, 3600) == 2
        assert leases.acquire(store, rid, "host-b:42:7c", now, 3600)
    finally:
        store.close()
    data = shiprail("controllers", "--json").json()
    until = (now + timedelta(seconds=3600)).isoformat()
    assert data == {
        "controllers": [
            {"holder": "host-a:41:9f", "until": until, "releases": []},
            {"holder": "host-b:42:7c", "until": until, "releases": [{"id": rid, "lease_until": until}]},
        ]
    }
    table = shiprail("controllers").out
    assert "host-b:42:7c" in table and rid in table
    view = shiprail("release", "show", rid, "--json").json()
    assert view["controller"] == {"holder": "host-b:42:7c", "lease_until": until}
    assert f"  controller: host-b:42:7c (lease until {now + timedelta(seconds=3600):%H:%M:%S}Z)" in (
        shiprail("release", "show", rid).out
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--timeout", "nan"],
            "--timeout takes a number of seconds, 0 or more and at most 366 days (31622400), got nan",
        ),
        (
            ["--timeout", "inf"],
            "--timeout takes a number of seconds, 0 or more and at most 366 days (31622400), got inf",
        ),
        (
            ["--timeout", "1e308"],
            "--timeout takes a number of seconds, 0 or more and at most 366 days (31622400), got 1e+308",
        ),
    ],
)
def test_a_bad_wait_timeout_is_refused_before_the_release_starts(shiprail: Any, args: list[str], message: str) -> None:
    rid = staged(shiprail)
    before = shiprail("audit", "verify", "--json").json()

    code, out, err = shiprail("release", "start", rid, "--wait", *args)

    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert shiprail("release", "show", rid, "--json").json()["status"] == "staging"
    assert shiprail("audit", "verify", "--json").json() == before


def test_a_timeout_without_wait_is_refused(shiprail: Any) -> None:
    rid = staged(shiprail)
    code, out, err = shiprail("release", "start", rid, "--timeout", "5")
    assert (code, out) == (2, "")
    assert err == "error: --timeout says how long --wait follows the release; give --wait too, or drop --timeout\n"
    assert shiprail("release", "show", rid, "--json").json()["status"] == "staging"


def test_a_postmortem_summary_without_done_is_refused_not_dropped(shiprail: Any) -> None:
    rid = staged(shiprail)
    code, out, err = shiprail("release", "postmortem", rid, "--summary", "we learned")
    assert (code, out) == (2, "")
    assert err == "error: --summary goes with --done (closing the open post-mortem); add --done, or drop --summary\n"


def test_a_release_the_controller_is_told_to_drive_must_exist(shiprail: Any) -> None:
    rid = staged(shiprail)
    code, out, err = shiprail("controller", "--once", "--release", "nope")
    assert (code, out) == (2, "")
    assert err == f"error: --release: no release 'nope'; recent releases: {rid}\n"


def test_a_metrics_port_that_is_no_port_is_refused(shiprail: Any) -> None:
    code, out, err = shiprail("controller", "--metrics-port", "70000")
    assert (code, out, err) == (2, "", "error: --metrics-port must be a port from 0 to 65535, got 70000\n")


def test_controllers_does_not_list_a_controller_of_this_host_whose_process_is_gone(shiprail: Any) -> None:
    # Killed (kill -9, OOM): its row and lease stayed until they lapsed, and `shiprail controllers` listed
    # it as driving its release for up to a lease period, though any controller takes that release at once.
    rid = staged(shiprail)
    assert shiprail("release", "start", rid).code == 0
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    holder = f"{leases._scope()}:{dead.pid}:deadbeef"
    store = open_store(None)
    now = datetime.now(UTC)
    try:
        assert leases.announce(store, "host-a:41:9f", now, 3600) == 1
        with store.transaction() as s:  # its row, as it left it when it last passed
            s.add(ControllerPresence(holder=holder, expires_at=now + timedelta(seconds=3600)))
        assert leases.acquire(store, rid, holder, now, 3600)
    finally:
        store.close()
    until = (now + timedelta(seconds=3600)).isoformat()
    assert shiprail("controllers", "--json").json() == {
        "controllers": [{"holder": "host-a:41:9f", "until": until, "releases": []}]
    }


def test_a_controller_of_this_host_whose_process_is_gone_is_no_running_controller(shiprail: Any) -> None:
    # Killed (kill -9, OOM) while it drove the release: `release rollback` said nothing, as if it
    # carried the rollback on, though nothing would confirm weight 0 until another controller ran.
    rid = staged(shiprail)
    assert shiprail("release", "start", rid).code == 0
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    holder = f"{leases._scope()}:{dead.pid}:deadbeef"
    store = open_store(None)
    now = datetime.now(UTC)
    try:
        with store.transaction() as s:  # its row, as it left it when it last passed
            s.add(ControllerPresence(holder=holder, expires_at=now + timedelta(seconds=3600)))
        assert leases.acquire(store, rid, holder, now, 3600)
    finally:
        store.close()
    assert shiprail("release", "rollback", rid, "--reason", "not this week", "--as", "bob").out == (
        f"{rid} is now rolling_back\n"
        "no controller is running: the canary keeps its traffic until one runs and the router confirms weight 0 "
        "(`shiprail controller`, or `shiprail controller --once`)\n"
    )


def test_controllers_on_a_store_it_cannot_read_says_so_in_one_sentence(shiprail: Any, project: Path) -> None:
    # An upgraded database whose controllers table the role was not granted (here: not there at all).
    shiprail("release", "list")  # creates the store
    store = open_store(None, create=False)
    with store.transaction() as s:
        s.execute(text("DROP TABLE controllers"))
    code, out, err = shiprail("controllers")
    assert (code, out) == (1, "")
    assert err.startswith("error: cannot read who drives what in sqlite:///") and err.count("\n") == 1, err
    assert err.endswith(
        "no such table: controllers; grant the role SELECT on leases and controllers (docs/operations.md)\n"
    )


def test_controller_prints_an_error_with_brackets_as_it_is(shiprail: Any) -> None:
    # Event lines were read as rich markup: a router error naming "[/srv/deploy/shop]" (a closing
    # tag to rich) lost its router.failed line altogether, and nginx's "[emerg]" vanished from it.
    service = Path("services/checkout.yaml")
    text = service.read_text()
    script = "echo 'deploy: [/srv/deploy/shop] is locked; nginx: [emerg] bad' >&2; exit 1"
    router = f'router:\n  type: command\n  set: "{script}"\n  get: echo 0\n'
    service.write_text(text[: text.index("router:")] + router + text[text.index("provider:") :])
    rid = staged(shiprail)
    shiprail("release", "start", rid)
    code, out, _ = shiprail("controller", "--once")
    assert code == 1
    failed = [line for line in out.splitlines() if " router.failed " in line]
    error = "the router's set command exited with status 1: deploy: [/srv/deploy/shop] is locked; nginx: [emerg] bad"
    assert [line[9:] for line in failed] == [f"{rid} router.failed 1% — {error}"]


def test_controller_metrics_count_every_service_of_the_project_from_zero_before_its_first_pass(
    shiprail: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The finished counters appeared only once this controller had held a release of the service.
    # A replica that takes over a release another was rolling back (it died) ends it in its first
    # pass: the counter was born at 1, which increase() does not count, and the ReleaseRolledBack
    # alert of docs/operations.md stayed silent. Now every service is at 0 from the start.
    import signal

    from shiprail.controller.reconciler import Controller

    Path("services/search.yaml").write_text(
        Path("services/checkout.yaml").read_text().replace("name: checkout", "name: search")
    )
    seen: dict[tuple[str, str], float | None] = {}

    def run(self: Controller, stop: Any = None, *, until_done: bool = False) -> None:
        assert self.health is not None
        for service in ("checkout", "search"):
            for status in ("complete", "rolled_back"):
                seen[service, status] = self.health.registry.get_sample_value(
                    "shiprail_controller_releases_finished_total", {"service": service, "status": status}
                )
        stop.set()  # the notifier thread ends with it

    monkeypatch.setattr(Controller, "run", run)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the test process keeps its handlers
    code, out, err = shiprail("controller", "--metrics-port", "0", "--quiet")
    assert (code, out, err) == (0, "", "")
    assert seen == {
        ("checkout", "complete"): 0,
        ("checkout", "rolled_back"): 0,
        ("search", "complete"): 0,
        ("search", "rolled_back"): 0,
    }


def test_serve_metrics_count_every_service_of_the_project_from_zero_before_its_first_pass(
    shiprail: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `shiprail controller --metrics-port`: serve's inner controller is one more replica.
    import shiprail.serve as serve_pkg
    import shiprail.serve.server as server_mod

    seen: dict[tuple[str, str], float | None] = {}
    made = serve_pkg.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        health = kwargs["health"]
        for status in ("complete", "rolled_back"):
            seen["checkout", status] = health.registry.get_sample_value(
                "shiprail_controller_releases_finished_total", {"service": "checkout", "status": status}
            )
        return made(*args, **kwargs)

    monkeypatch.setattr(serve_pkg, "create_app", create_app)

    def run(self: Any, sockets: Any = None) -> None:  # no server: the test ends here
        for sock in sockets or ():
            sock.close()

    monkeypatch.setattr(server_mod.Server, "run", run)
    code, _, err = shiprail("serve", "--host", "127.0.0.1", "--port", "0", "--quiet")
    assert (code, err) == (0, "")
    assert seen == {("checkout", "complete"): 0, ("checkout", "rolled_back"): 0}


def test_an_override_that_starts_the_rollout_says_when_no_controller_runs(shiprail: Any) -> None:
    # The override itself starts the rollout; without a controller nothing moves the router.
    text = Path(PLAN).read_text().replace("tags: [payments]", "tags: [checkout]")
    stage = 'stage:\n  tests:\n    - {name: unit, command: "false"}\n\n'
    Path(PLAN).write_text(text[: text.index("stage:")] + stage + text[text.index("rollout:") :])
    rid = json.loads(shiprail("release", "create", PLAN, "--json").out)["id"]
    assert shiprail("release", "approve", rid, "--as", "bob").code == 0
    assert shiprail("release", "stage", rid).code == 0
    assert shiprail("release", "check", rid).code == 1
    assert shiprail("release", "start", rid).code == 1
    code, out, err = shiprail("release", "override", rid, "--as", "dana", "--reason", REASON)
    assert (code, err) == (0, "")
    assert out == (
        f"overridden: {rid} is now rolling_out (step 1); post-mortem #1 is open (close it with "
        f"`shiprail release postmortem {rid} --done --summary ...`)\n"
        "no controller is running: the release moves on only while one runs "
        "(`shiprail controller`, or `shiprail controller --once`)\n"
    )


def test_a_controller_that_drives_whatever_is_active_counts_though_it_holds_other_releases(
    shiprail: Any, project: Path
) -> None:
    rid, store = started_beside_another(shiprail, project)
    now = WallClock().now()
    assert leases.acquire(store, "checkout-2.4.9", "scaled", now, 600)
    leases.announce(store, "scaled", now, 600)
    code, out, _ = shiprail("release", "rollback", rid, "--reason", "pager: 5xx on checkout", "--as", "bob")
    assert (code, out) == (0, f"{rid} is now rolling_back\n")


def test_show_says_who_paused_a_release_why_and_what_resumes_it(shiprail: Any) -> None:
    # `release show` of a paused release said only "paused (from rolling_out)": not whether a
    # person (who would have to resume it) or missing data (which lifts itself) paused it, nor why.
    from dataclasses import replace

    from shiprail.store.rollouts import load_progress, save_progress

    rid = staged(shiprail)
    shiprail("release", "start", rid)
    store = open_store(None, Path.cwd())
    svc = Releases(store, WallClock(), open_project(Path.cwd()).policy)
    try:
        # The controller's pause for missing data, as it records one.
        why = "3 analyses in a row without a verdict (errors: canary: no data)"
        svc.act(rid, Action.PAUSE, "shiprail:controller", reason=why)
        with store.transaction() as s:
            save_progress(s, rid, replace(load_progress(s, rid), paused_for_no_data=True), WallClock().now())
        view = shiprail("release", "show", rid, "--json").json()
        at = view["paused"]["at"]
        assert view["paused"] == {
            "by": "shiprail:controller",
            "at": at,
            "reason": why,
            "for_missing_data": True,
            "provider_failing": False,
        }
        shown = f"{at[:10]} {at[11:19]}Z"
        assert (
            f"paused for missing data at {shown}: {why}; it resumes by itself at the first analysis in which every "
            f"trigger passes (while a controller runs), or by `shiprail release resume {rid}`"
        ) in " ".join(shiprail("release", "show", rid).out.split())
    finally:
        store.close()
    # A person takes the pause over: now only a person resumes it.
    assert shiprail("release", "pause", rid, "--reason", "dashboards look odd", "--as", "bob").code == 0
    view = shiprail("release", "show", rid, "--json").json()
    at = view["paused"]["at"]
    assert view["paused"] == {
        "by": "bob",
        "at": at,
        "reason": "dashboards look odd",
        "for_missing_data": False,
        "provider_failing": False,
    }
    assert (
        f"paused by bob at {at[:10]} {at[11:19]}Z: dashboards look odd; only a person resumes it: "
        f"`shiprail release resume {rid}`"
    ) in " ".join(shiprail("release", "show", rid).out.split())
    shiprail("release", "resume", rid, "--as", "bob")
    assert shiprail("release", "show", rid, "--json").json()["paused"] is None


def rolled_back(shiprail: Any) -> str:
    """A release of the example plan, started, rolled back by bob and its revert confirmed."""
    from shiprail.domain.gates import GateResult
    from shiprail.domain.states import Gate

    rid = staged(shiprail)
    shiprail("release", "start", rid)
    shiprail("release", "rollback", rid, "--as", "bob")
    store = open_store(None, Path.cwd())
    try:
        Releases(store, WallClock(), open_project(Path.cwd()).policy).act(
            rid,
            Action.FINISH_ROLLBACK,
            "shiprail:controller",
            {Gate.REVERT_CONFIRMED: GateResult(Gate.REVERT_CONFIRMED, True, "weight 0 confirmed")},
        )
    finally:
        store.close()
    return rid


def test_an_action_on_a_rolled_back_release_says_how_to_try_again(shiprail: Any) -> None:
    # Argo's `retry` has no twin here: a rolled-back release never starts again. The refusals said
    # "from there you can: nothing (it has ended)" and left the user there, without the release's id.
    rid = rolled_back(shiprail)
    again = f"to try again, create a new release of its plan: `shiprail release create {Path(PLAN).resolve()}`"
    for action in ("rollback", "resume", "pause", "promote"):
        assert tuple(shiprail("release", action, rid, "--as", "bob")) == (
            1,
            "",
            f"error: cannot {action} release {rid}: it is rolled_back, and a release that has ended takes no more "
            f"actions; {again}\n",
        )
    for wait in ([], ["--wait"]):  # --wait printed the release and exited 1 without a word
        assert tuple(shiprail("release", "start", rid, *wait)) == (
            1,
            "",
            f"error: release {rid} is rolled_back; only a release in staging can start; {again}\n",
        )
    code, _, err = shiprail("release", "override", rid, "--as", "dana", "--reason", REASON)
    assert (code, err) == (
        1,
        f"error: release {rid} is rolled_back; there is no gate to override from there; {again}\n",
    )


def test_a_promote_refused_for_its_bake_or_analysis_says_when_no_controller_runs(shiprail: Any) -> None:
    # "fix it and try again": with no controller running nothing analyses or bakes, so trying again
    # (an Argo user's `promote` after `release start` without --wait) was refused for ever.
    rid = staged(shiprail)
    shiprail("release", "start", rid)
    code, out, err = shiprail("release", "promote", rid)
    assert (code, out) == (1, "")
    assert err.rstrip().endswith(
        "(failed: bake, analysis); no controller is running, so nothing analyses the release or bakes its step "
        "until one does (`shiprail controller`, or `shiprail controller --once`)"
    )
    assert shiprail("release", "promote", rid, "--json").json()["failed_gates"] == ["bake", "analysis"]
    # With a controller running, the refusal is as it was.
    store = open_store(None, Path.cwd())
    try:
        assert leases.acquire(store, rid, "another-controller", WallClock().now(), 600)
        code, _, err = shiprail("release", "promote", rid)
    finally:
        store.close()
    assert code == 1
    assert err.rstrip().endswith("(failed: bake, analysis)")


def test_a_rollback_does_not_show_the_weight_of_the_step_it_left_as_the_routers_trouble(shiprail: Any) -> None:
    # `release show` of a release rolled back while its router failed at 1% said "router: cannot
    # apply 1% (…)" until a controller tried weight 0: a weight nobody tries any more.
    rid = staged(shiprail)
    shiprail("release", "start", rid)
    assert shiprail("controller", "--once", "--quiet").code == 1  # the tour's nginx is not there
    assert shiprail("release", "show", rid, "--json").json()["router_trouble"]["weight"] == 1
    shiprail("release", "rollback", rid, "--as", "bob")
    assert shiprail("release", "show", rid, "--json").json()["router_trouble"] is None
    assert "cannot apply 1%" not in shiprail("release", "show", rid).out
    # Once weight 0 fails too, that is what is shown.
    assert shiprail("controller", "--once", "--quiet").code == 1
    assert shiprail("release", "show", rid, "--json").json()["router_trouble"]["weight"] == 0


def test_a_plan_file_whose_releases_have_all_ended_says_how_to_make_a_new_one(shiprail: Any) -> None:
    # It said "plan a new release" without the command, nor how the latest one ended; and exited 2
    # (bad input), where the same action on that release by its id is refused, exit 1.
    rid = rolled_back(shiprail)
    assert shiprail("release", "resume", rid, "--as", "bob").code == 1
    assert tuple(shiprail("release", "resume", PLAN, "--as", "bob")) == (
        1,
        "",
        f"error: every release of {PLAN} has ended (latest: {rid}, rolled_back); create a new release of it: "
        f"`shiprail release create {PLAN}`\n",
    )


def test_controller_once_says_when_the_router_is_tried_next_as_times_are_shown(shiprail: Any) -> None:
    # "next at 2026-11-29T04:19:24+00:00": the raw ISO time, where every other line writes
    # "2026-11-29 04:19:24Z".
    import re

    rid = staged(shiprail)
    shiprail("release", "start", rid)
    code, _, err = shiprail("controller", "--once", "--quiet")
    assert code == 1
    assert re.match(
        rf"error: the router cannot apply 1% for {rid} \(retried with backoff, next at "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\): ",
        err,
    ), err


def test_a_refusal_at_a_persons_pause_does_not_offer_to_pause_it_again(shiprail: Any) -> None:
    # "from there you can: pause, resume, rollback", where `pause` was then refused ("it is already
    # paused by a person").
    rid = staged(shiprail)
    shiprail("release", "start", rid)
    shiprail("release", "pause", rid, "--as", "bob")
    assert tuple(shiprail("release", "promote", rid)) == (
        1,
        "",
        "error: cannot promote a release that is paused (from rolling_out); from there you can: resume, rollback\n",
    )
