"""What ``release show`` prints of a rollback log: one time format, metrics named by trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from rich.text import Text

from shiprail.cli.watch import rollback_lines, utc


def _after(trigger: str, metric: str, window_s: int, canary: float, baseline: float) -> dict[str, object]:
    return {
        "trigger": trigger,
        "metric": metric,
        "window_s": window_s,
        "canary": {"value": canary, "samples": 3.0, "error": None},
        "baseline": {"value": baseline, "samples": 594.0, "error": None},
    }


def test_the_rollback_log_in_one_time_format_with_each_metric_named_by_its_trigger() -> None:
    log = {
        "id": 1,
        "trigger": "errors",
        "cause": "trigger",
        "value": 0.3333,
        "threshold": 0.02,
        "initiated_by": "shiprail:controller",
        "reason": "trigger errors fired: 0.333333 above the limit 0.02",
        "detected_at": "2026-11-28T04:47:31.018142+00:00",
        "decided_at": "2026-11-28T04:47:31.027924+00:00",
        "revert_started_at": "2026-11-28T04:47:31.037452+00:00",
        "revert_confirmed_at": None,
        "detected_to_confirmed_s": None,
        "max_duration_s": 10.0,
        "max_duration_met": None,
        "confirmation": None,
        "metrics_after": [
            _after("error-regression", "error_rate", 1, 0.5, 0.0),
            _after("errors", "error_rate", 5, 0.3333333333333333, 0.0),
        ],
    }
    lines = [line.plain for line in rollback_lines(log) if isinstance(line, Text)]
    assert lines[2:5] == [
        "    detected  2026-11-28 04:47:31.018Z",
        "    decided   2026-11-28 04:47:31.027Z",
        "    revert    started 2026-11-28 04:47:31.037Z, confirmed –",
    ]
    assert lines[-2:] == [
        "    after: error-regression (error_rate over 1s): canary 0.5, baseline 0",
        "    after: errors (error_rate over 5s): canary 0.3333, baseline 0",
    ]


def test_a_regression_triggers_rollback_shows_its_p_value_against_alpha() -> None:
    # "0.0001944 vs threshold 0.01" read as a value below a limit that should not have fired.
    log = {
        "id": 2,
        "trigger": "error-regression",
        "cause": "trigger",
        "value": 0.0001944,
        "threshold": 0.01,
        "initiated_by": "shiprail:controller",
        "reason": "trigger error-regression fired: canary worse than baseline",
        "detected_at": None,
        "decided_at": None,
        "revert_started_at": None,
        "revert_confirmed_at": None,
        "detected_to_confirmed_s": None,
        "max_duration_s": None,
        "max_duration_met": None,
        "confirmation": None,
        "metrics_after": [],
    }
    head = rollback_lines(log, tests={"error-regression"})[0]
    assert isinstance(head, Text)
    assert head.plain == "  rollback #2 (trigger error-regression: p = 0.0001944 ≤ α 0.01) by shiprail:controller"
    plain = rollback_lines({**log, "trigger": "errors", "value": 0.3, "threshold": 0.02})[0]
    assert isinstance(plain, Text)
    assert plain.plain == "  rollback #2 (trigger errors: 0.3 vs threshold 0.02) by shiprail:controller"


def test_times_are_shown_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert utc(datetime(2026, 11, 28, 5, 47, 31, 18142, tzinfo=paris)) == "2026-11-28 04:47:31Z"
    assert utc("2026-11-28T04:47:31.018142+00:00", ms=True) == "2026-11-28 04:47:31.018Z"
    assert utc(datetime(2026, 11, 28, 4, 47, 8, tzinfo=UTC)) == "2026-11-28 04:47:08Z"
    assert utc(None) == "–"


def test_a_progress_line_says_why_a_trigger_is_inconclusive_and_why_the_release_paused() -> None:
    from types import SimpleNamespace
    from typing import cast

    from shiprail.cli.watch import _summary
    from shiprail.releases import ReleaseView

    view = SimpleNamespace(
        state="paused (from rolling_out)",
        status="paused",
        progress={"applied_weight": 1.0, "paused_for_no_data": True},
        router_trouble=None,
        last_analysis={
            "results": [
                {
                    "trigger": "errors",
                    "verdict": "inconclusive",
                    "reason": "canary: 2.2 samples, fewer than the 20 required",
                },
                {"trigger": "slow", "verdict": "pass", "reason": "0.00495 within the limit 0.5"},
            ]
        },
    )
    assert _summary(cast(ReleaseView, view)) == (
        "paused (from rolling_out) for missing data, router at 1%: "
        "errors inconclusive (canary: 2.2 samples, fewer than the 20 required), slow pass"
    )
    view.progress["paused_for_no_data"] = False
    view.state, view.status = "rolling_out (step 1)", "rolling_out"
    assert _summary(cast(ReleaseView, view)).startswith(
        "rolling_out (step 1), router at 1%: errors inconclusive (canary"
    )


def test_a_progress_line_off_a_terminal_is_printed_as_text() -> None:
    # An inconclusive trigger's reason and a router's error quote what a provider or nginx said:
    # printed as Rich markup, nginx's '[emerg]' was left out of the line and a '[/x]' raised.
    import io
    from types import SimpleNamespace
    from typing import cast

    from rich.console import Console

    from shiprail.cli.watch import follow
    from shiprail.releases import Releases

    view = SimpleNamespace(
        state="rolled_back",
        status="rolled_back",
        progress={"applied_weight": 0.0},
        router_trouble={"weight": 0.0, "error": "nginx: [emerg] unknown directive [/srv]"},
        last_analysis={"results": [{"trigger": "errors", "verdict": "inconclusive", "reason": "query [bad] [/x]"}]},
    )
    clock = SimpleNamespace(now=lambda: datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    svc = SimpleNamespace(clock=clock, get=lambda release_id: view)
    buffer = io.StringIO()
    follow(cast(Releases, svc), "shop-1.0.0", Console(file=buffer, force_terminal=False, width=300))
    assert buffer.getvalue() == (
        "12:00:00 rolled_back, router at 0%: errors inconclusive (query [bad] [/x]); "
        "the router cannot apply 0%: nginx: [emerg] unknown directive [/srv]\n"
    )


def test_a_triggers_reason_in_the_last_analysis_is_text_not_markup() -> None:
    # "[/srv]" in a provider's message ended release show in a MarkupError; "[emerg]" vanished.
    from types import SimpleNamespace
    from typing import cast

    from rich.console import Console
    from rich.table import Table

    from shiprail.cli.watch import rollout_lines
    from shiprail.releases import ReleaseView

    reason = "nginx: [emerg] cannot read [/srv]/x.conf"
    view = SimpleNamespace(
        resolved=SimpleNamespace(contract=SimpleNamespace(triggers=[])),
        progress={},
        step=None,
        state="rolling_out (step 1)",
        status="rolling_out",
        router_trouble=None,
        held=None,
        paused=None,
        dry_runs=[],
        last_analysis={
            "at": "2026-11-28T04:47:31+00:00",
            "results": [
                {
                    "trigger": "errors",
                    "verdict": "inconclusive",
                    "value": None,
                    "threshold": 0.01,
                    "baseline": None,
                    "reason": reason,
                }
            ],
        },
        rollbacks=[],
    )
    [table] = [x for x in rollout_lines(cast(ReleaseView, view)) if isinstance(x, Table)]
    console = Console(width=400, record=True)
    console.print(table)
    assert reason in console.export_text()


def test_wait_keeps_its_timeout_when_the_store_stops_answering() -> None:
    # A store that takes the bytes and never answers (a stalled server, a hung pooler) is invisible
    # to TCP timeouts: `release start --wait --timeout 60` waited as long as the stall lasted.
    import io
    import threading
    import time
    from types import SimpleNamespace
    from typing import cast

    import pytest
    from rich.console import Console

    from shiprail.cli.watch import follow
    from shiprail.clock import WallClock
    from shiprail.errors import StoreError
    from shiprail.releases import Releases

    view = SimpleNamespace(
        state="rolling_out (step 1)",
        status="rolling_out",
        progress={"applied_weight": 1.0},
        router_trouble=None,
        last_analysis=None,
        held=None,
    )
    stalled = threading.Event()  # never set: every look after the first hangs
    looks: list[int] = []

    def get(release_id: str) -> SimpleNamespace:
        looks.append(1)
        if len(looks) > 1:
            stalled.wait()
        return view

    svc = SimpleNamespace(clock=WallClock(), get=get)
    buffer = io.StringIO()
    started = time.monotonic()
    got = follow(cast(Releases, svc), "shop-1.0.0", Console(file=buffer, width=300), timeout_s=0.3, stall_grace_s=0.3)
    assert got is view and time.monotonic() - started < 2.0
    assert buffer.getvalue().splitlines()[-1].endswith("the store did not answer by --timeout; looking no longer")
    # Silent from the first look: nothing to show, so an error (exit 1), not a view.
    looks.append(1)
    with pytest.raises(StoreError, match="the store did not answer by --timeout"):
        follow(cast(Releases, svc), "shop-1.0.0", Console(file=io.StringIO()), timeout_s=0.2, stall_grace_s=0.2)


def test_a_weight_the_router_never_confirmed_is_shown_as_a_dash_not_a_dash_percent() -> None:
    # Before the router confirmed any weight (it keeps failing at the first step), the progress
    # line and release show said "router at –%" and "(router: –%)".
    from types import SimpleNamespace
    from typing import cast

    from shiprail.cli.watch import _summary
    from shiprail.describe import position
    from shiprail.releases import ReleaseView

    view = SimpleNamespace(
        state="rolling_out (step 1)",
        status="rolling_out",
        step=0,
        progress={"applied_weight": None, "baked_s": 0},
        resolved=SimpleNamespace(steps=[SimpleNamespace(weight=1.0, bake=1800)]),
        router_trouble=None,
        last_analysis=None,
    )
    assert _summary(cast(ReleaseView, view)) == "rolling_out (step 1), router at –: no analysis yet"
    assert position(cast(ReleaseView, view)) == "step 1 of 1: 1% (router: –), baked 0s of 30m, 30m left"
    view.progress["applied_weight"] = 1.0
    assert _summary(cast(ReleaseView, view)) == "rolling_out (step 1), router at 1%: no analysis yet"


def test_a_step_past_its_bake_says_how_long_it_stood_and_the_bake_planned() -> None:
    # A step waiting for a person to promote it kept counting: "baked 5m of 2m".
    from types import SimpleNamespace
    from typing import cast

    from shiprail.describe import position
    from shiprail.releases import ReleaseView

    view = SimpleNamespace(
        step=0,
        progress={"applied_weight": 10.0, "baked_s": 300},
        resolved=SimpleNamespace(
            steps=[SimpleNamespace(weight=10.0, bake=120), SimpleNamespace(weight=100.0, bake=None)]
        ),
    )
    assert position(cast(ReleaseView, view)) == "step 1 of 2: 10% (router: 10%), baked 5m (2m planned)"
    view.progress["baked_s"] = 120.6  # past it by less than the second shown
    assert position(cast(ReleaseView, view)) == "step 1 of 2: 10% (router: 10%), baked 2m of 2m"
    view.progress["baked_s"] = 60
    assert position(cast(ReleaseView, view)) == "step 1 of 2: 10% (router: 10%), baked 1m of 2m, 1m left"
    view.step, view.progress["baked_s"] = 1, 60  # a step with no bake, waiting for a person to promote it
    assert position(cast(ReleaseView, view)) == "step 2 of 2: 100% (router: 10%), baked 1m (no bake planned)"


def test_progress_in_a_ci_log_that_forces_colour_is_a_line_a_change_not_a_live_display() -> None:
    # FORCE_COLOR (colour in a CI log) makes Rich take the log for a terminal: `release start --wait`
    # then drew its live display there, redrawn four times a second, instead of a line a change.
    import io
    from types import SimpleNamespace
    from typing import cast

    from shiprail.cli.output import CliConsole
    from shiprail.cli.watch import follow
    from shiprail.releases import Releases

    view = SimpleNamespace(
        state="rolled_back",
        status="rolled_back",
        progress={"applied_weight": 0.0},
        router_trouble=None,
        last_analysis={"results": [{"trigger": "errors", "verdict": "fail", "reason": "0.3 above the limit 0.02"}]},
    )
    clock = SimpleNamespace(now=lambda: datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    svc = SimpleNamespace(clock=clock, get=lambda release_id: view)
    buffer = io.StringIO()
    out = CliConsole(file=buffer, highlight=False, soft_wrap=True, _environ={"FORCE_COLOR": "1"})
    assert out.is_terminal  # as Rich sees it
    follow(cast(Releases, svc), "shop-1.0.0", out)
    assert buffer.getvalue() == "12:00:00 rolled_back, router at 0%: errors fail\n"


def test_a_slow_revert_is_shown_in_minutes_as_its_limit_is() -> None:
    # A revert confirmed by hand 22 minutes on was shown "in 1324.320s (max 5m: MISSED)": seconds
    # beside a limit in minutes; the release package already says "22m4s".
    confirmed = {
        "id": 1,
        "trigger": None,
        "cause": "manual",
        "value": None,
        "threshold": None,
        "initiated_by": "bob",
        "reason": "pager: 5xx on checkout",
        "detected_at": "2026-11-29T10:14:17.511000+00:00",
        "decided_at": "2026-11-29T10:14:17.511000+00:00",
        "revert_started_at": "2026-11-29T10:34:15.756000+00:00",
        "revert_confirmed_at": "2026-11-29T10:36:21.831000+00:00",
        "max_duration_s": 300.0,
        "max_duration_met": False,
        "confirmation": None,
        "metrics_after": [],
    }
    slow = [line.plain for line in rollback_lines({**confirmed, "detected_to_confirmed_s": 1324.32})]
    fast = [
        line.plain for line in rollback_lines({**confirmed, "detected_to_confirmed_s": 0.248, "max_duration_met": True})
    ]
    assert slow[5] == "    detected → confirmed in 22m4s (max 5m: MISSED)"
    assert fast[5] == "    detected → confirmed in 0.248s (max 5m: met)"
