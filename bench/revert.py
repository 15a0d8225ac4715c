"""How fast shiprail's controller takes traffic off a canary once a rollback-contract trigger fires.

Against real processes, nginx and HAProxy side by side in one run (one after the other, each on
its own stack from ``tests/e2e/stack.py``: two sample service versions, Prometheus scraping every
second, the router in front, a steady client sending fresh-connection GETs through it)::

    .venv/bin/python -m bench.revert [--runs 25] [--detect-runs 10] [--routers nginx,haproxy]

Run it from the repository root (``tests`` must be importable). It prints a table and rewrites
the revert section of ``docs/benchmarks.md`` (between ``<!-- bench:revert:start -->`` and
``<!-- bench:revert:end -->``); ``--no-docs`` leaves the page alone.

Two measurements per router, sharing one stack, one store and one controller process:

**Revert** (``--runs`` rollbacks). A release of ``checkout 2.4.0`` is created, approved, staged
and started; its plan bakes 1 s at 1 % and 10 % and 600 s at 50 %, with a 1 s analysis interval.
Once the controller has the release at 50 % and the client sees canary responses, the bench
waits a random fraction of an analysis interval (so the complaint lands at every phase of the
analysis cadence) and posts one ``customer_complaint`` signal. The contract's
``complaints: above 0, window 1m`` trigger fires at the next analysis: the moment its queries came
back (when the controller saw the failure) is the rollback log's ``detected_at``. The bench
waits for ``rolled_back`` and then measures

- *trigger → no canary (client)*: the send time of the last request the canary answered, minus
  ``detected_at``. The client's ``time.monotonic()`` send times are put on the wall clock with an
  offset taken once per run (``time.time() - time.monotonic()``). Requests go out every 1/R s
  (R a second) and at 50 % every other one is the canary's, so the cut-off is known to about
  2/R s; the gap from the last canary request to the next one sent is reported too;
- *trigger → confirmed (controller)*: ``revert_confirmed_at - detected_at`` from the rollback log
  (the router read back weight 0), and ``decided_at - detected_at``;
- *complaint → trigger*: from the signal's receipt to ``detected_at`` (waiting for the next
  analysis, at most one analysis period, and its queries).

**Detection** (``--detect-runs`` rollbacks). A release is started at a random moment (the
crossing follows Prometheus's fixed scrape schedule, the analyses the release's start: this
spreads their relative phase) and brought to 50 % the same way; then the canary is made to fail
half its requests (``error_rate=0.5``). The contract's ``errors: error_rate
above 0.05, window 5s, min_samples 5`` trigger fires at some analysis. The moment the metric
crossed its threshold *as Prometheus sees it* is found afterwards: the bench evaluates the
provider's own PromQL (``ERROR_RATE_QUERY`` rendered for 2.4.0 over 5 s) with a range query from
the injection to the detection on a 10 ms grid; the first point above 0.05 is the crossing. (Not
only at scrape timestamps: ``rate()`` extrapolates to the window's edges, so while the 5xx
counter starts the window at 0 the ratio moves between scrapes.) A side thread also polls the
same query every 50 ms as a cross-check (the first poll that saw it). Detection delay =
``detected_at`` - crossing; the target is one analysis interval. After each run the canary is
healed and the bench waits until the canary's 5xx count over the trigger's window is back to 0,
so the next release starts clean.

The controller runs in a process of its own (``--controller thread`` puts it in a thread of the
bench instead), as ``shiprail controller`` would: the client's threads then do not compete
with it for one GIL. A run whose release ends for another reason (another trigger fired, it did
not reach 50 %) is discarded, reported, and replaced.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from tests.e2e.stack import CANARY, DEFAULT_TRIGGERS, ERROR_RATE_QUERY, SERVICE, Load, RouterKind, Stack, write_project
from tests.e2e.stack import start_stack as start_e2e_stack

from bench.page import command_version, docs_problem, machine, md_table, reflow, write_section
from shiprail.clock import WallClock
from shiprail.controller import Controller
from shiprail.domain.states import Action
from shiprail.project import Project, check_plan_file, open_project
from shiprail.providers.prometheus import render_query
from shiprail.providers.push import record_signal
from shiprail.releases import Releases
from shiprail.store.db import Store
from shiprail.store.models import Analysis

ROUTERS: tuple[RouterKind, ...] = ("nginx", "haproxy")
RUNS = 25
DETECT_RUNS = 10
RATE = 300.0
"""Requests a second the client sends through the router (fresh connection each)."""
CONCURRENCY = 32
INTERVAL_S = 1
"""The plan's analysis interval."""
BAKES = (1, 1, 600)
"""Seconds of bake at 1, 10 and 50 %: the release sits at 50 % until the trigger fires."""
POLL_S = 0.05
"""The controller's poll (it wakes exactly when an analysis is due either way)."""
TAIL_S = 1.0
"""How long the client keeps watching after the router confirmed weight 0."""
PROM_POLL_S = 0.05
INJECTED_ERROR_RATE = 0.5
TARGET_P99_S = 1.0
MARK_START = "<!-- bench:revert:start -->"
MARK_END = "<!-- bench:revert:end -->"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

ERRORS_TRIGGER = next(t for t in DEFAULT_TRIGGERS if t.get("metric") == "error_rate")
ERROR_THRESHOLD = float(ERRORS_TRIGGER["above"])
ERROR_WINDOW_S = int(str(ERRORS_TRIGGER["window"]).removesuffix("s"))
CANARY_ERROR_RATE = render_query(ERROR_RATE_QUERY, CANARY, ERROR_WINDOW_S)
CANARY_5XX_IN_WINDOW = f'sum(increase(http_requests_total{{version="{CANARY}",code=~"5.."}}[{ERROR_WINDOW_S}s]))'
CROSSING_STEP_S = 0.01
"""The grid on which the trigger's query is evaluated after the fact to find the crossing."""


class Discard(Exception):
    """This run measured something else (another trigger fired, the release never reached 50 %)."""


# ------------------------------------------------------------------------------------- results


@dataclass
class RevertRun:
    release: str
    complaint_at: float
    """Wall-clock seconds (Unix time) throughout."""
    detected_at: float
    decided_at: float
    revert_started_at: float
    confirmed_at: float
    last_canary_at: float
    """Send time of the last request the canary answered."""
    resolution_s: float
    """Gap from that request to the next one sent (which the stable version answered)."""
    client_errors: int
    """Responses other than 200, and requests with no response, from 1 s before detection to the tail's end."""

    @property
    def complaint_to_detected_s(self) -> float:
        return self.detected_at - self.complaint_at

    @property
    def detected_to_decided_s(self) -> float:
        return self.decided_at - self.detected_at

    @property
    def detected_to_confirmed_s(self) -> float:
        return self.confirmed_at - self.detected_at

    @property
    def detected_to_no_canary_s(self) -> float:
        return self.last_canary_at - self.detected_at

    @property
    def confirmed_to_no_canary_s(self) -> float:
        return self.last_canary_at - self.confirmed_at


@dataclass
class DetectRun:
    release: str
    injected_at: float
    crossing_at: float
    """The first moment (10 ms grid) for which Prometheus answers the trigger's query above its threshold."""
    first_seen_at: float | None
    """When the 50 ms poll first got an answer above the threshold (a cross-check)."""
    detected_at: float
    previous_analysis_at: float | None
    """When the analysis before the one that fired was recorded."""
    value: float
    """The error rate the trigger fired on."""

    @property
    def delay_s(self) -> float:
        return self.detected_at - self.crossing_at

    @property
    def seen_delay_s(self) -> float | None:
        return None if self.first_seen_at is None else self.detected_at - self.first_seen_at

    @property
    def injected_to_crossing_s(self) -> float:
        return self.crossing_at - self.injected_at

    @property
    def previous_after_crossing_s(self) -> float | None:
        """How long after the crossing the previous analysis (which did not fire) was recorded."""
        return None if self.previous_analysis_at is None else self.previous_analysis_at - self.crossing_at


@dataclass
class RouterResult:
    router: RouterKind
    reverts: list[RevertRun] = field(default_factory=list)
    detects: list[DetectRun] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    analysis_periods: list[float] = field(default_factory=list)
    """Seconds between consecutive analyses of a release at 50 %."""
    sent: int = 0
    skipped: int = 0
    failures: int = 0
    load_s: float = 0.0


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100): with 25 values, p99 is the largest."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def wall(iso: str | None) -> float:
    if iso is None:
        raise Discard("the rollback log lacks a time")
    return datetime.fromisoformat(iso).timestamp()


# ---------------------------------------------------------------------------------- controller


def controller_main(db_url: str, root: str, poll_s: float, stop: Any, ready: Any) -> None:
    """The controller process: reconcile every release of the store until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops it, after Ctrl-C too
    project = open_project(Path(root))
    svc = Releases(Store(db_url, migrate=False), WallClock(), project.policy)
    halt = threading.Event()

    def relay() -> None:
        stop.wait()
        halt.set()

    threading.Thread(target=relay, name="stop-relay", daemon=True).start()
    ready.set()
    Controller(svc, poll_s=poll_s).run(halt)


class ControllerRunner:
    """One shiprail controller over the bench's store, in its own process or in a thread."""

    def __init__(self, mode: Literal["process", "thread"], db_url: str, root: Path, poll_s: float) -> None:
        self.mode = mode
        self.db_url, self.root, self.poll_s = db_url, root, poll_s
        self._proc: Any = None
        self._mp_stop: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self.mode == "process":
            ctx = multiprocessing.get_context("spawn")
            self._mp_stop, ready = ctx.Event(), ctx.Event()
            self._proc = ctx.Process(
                target=controller_main,
                args=(self.db_url, str(self.root), self.poll_s, self._mp_stop, ready),
                name="shiprail-controller",
            )
            self._proc.start()
            if not ready.wait(30):
                raise RuntimeError("the controller process did not start within 30 s")
        else:
            project = open_project(self.root)
            svc = Releases(Store(self.db_url, migrate=False), WallClock(), project.policy)
            controller = Controller(svc, poll_s=self.poll_s)
            self._thread = threading.Thread(target=controller.run, args=(self._stop,), name="controller", daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        if self._proc is not None:
            return bool(self._proc.is_alive())
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._proc is not None:
            self._mp_stop.set()
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()  # by its own handle: the process this bench started
                self._proc.join(5)
            self._proc = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None


# ---------------------------------------------------------------------------------- Prometheus


class Prom:
    """Instant queries, optionally at a past time, against the stack's Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=5)

    def close(self) -> None:
        self.client.close()

    def result(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        doc = self.client.get(f"{self.url}/api/v1/query", params=params).json()
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {doc.get('error')}")
        result = doc["data"]["result"]
        return result if isinstance(result, list) else [{"value": result}]

    def series(self, promql: str, start: float, end: float, step_s: float) -> list[tuple[float, float | None]]:
        """A range query's one series as (time, value) points; None for NaN."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        doc = self.client.get(f"{self.url}/api/v1/query_range", params=params).json()
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {doc.get('error')}")
        result = doc["data"]["result"]
        if len(result) != 1:
            return []
        points = [(float(at), float(v)) for at, v in result[0]["values"]]
        return [(at, v if math.isfinite(v) else None) for at, v in points]

    def value(self, promql: str, at: float | None = None) -> float | None:
        """One series' value, None for an empty vector or NaN."""
        result = self.result(promql, at)
        if not result:
            return None
        v = float(result[0]["value"][1])
        return v if math.isfinite(v) else None


class Poller:
    """Polls the trigger's query in a thread; remembers the first answer above the threshold."""

    def __init__(self, prom_url: str, promql: str, threshold: float, period_s: float) -> None:
        self.prom = Prom(prom_url)
        self.promql, self.threshold, self.period_s = promql, threshold, period_s
        self.armed_at: float | None = None
        self.first_seen_at: float | None = None
        self.before: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prom-poll", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def arm(self, at: float) -> None:
        self.armed_at = at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.prom.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                value = self.prom.value(self.promql)
            except (httpx.HTTPError, RuntimeError, ValueError):
                value = None
            now = time.time()
            if self.armed_at is None:
                self.before.append(value)
            elif self.first_seen_at is None and value is not None and value > self.threshold:
                self.first_seen_at = now
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))


# ----------------------------------------------------------------------------------- one router


class RouterBench:
    """One stack, one store, one controller and one steady client for a router."""

    def __init__(self, router: RouterKind, workdir: Path, args: argparse.Namespace, console: Console) -> None:
        self.router = router
        self.workdir = workdir
        self.args = args
        self.console = console
        self.result = RouterResult(router)
        self.stack: Stack | None = None
        self.load: Load | None = None
        self.controller: ControllerRunner | None = None
        self.store: Store | None = None
        self.prom: Prom | None = None
        self._load_started = 0.0

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.stack = start_e2e_stack(self.workdir / "stack", self.router)
        root = self.workdir / "project"
        self.plan = write_project(
            root, self.stack, triggers=DEFAULT_TRIGGERS, bakes=BAKES, interval=INTERVAL_S, verify_window=1
        )
        self.project: Project = open_project(root)
        db_url = f"sqlite:///{root / 'bench.db'}"
        self.store = Store(db_url)  # migrates before the controller opens it
        self.svc = Releases(self.store, WallClock(), self.project.policy)
        self.prom = Prom(self.stack.prometheus_url)
        self.controller = ControllerRunner(self.args.controller, db_url, root, POLL_S)
        self.controller.start()
        self.load = Load(self.stack.url, rate=self.args.rate, concurrency=CONCURRENCY).start()
        self._load_started = time.monotonic()

    def stop(self) -> None:
        problems: list[str] = []
        if self.load is not None:
            try:
                self.load.stop()
                self.result.sent = len(self.load.hits()) + len(self.load.errors())
                self.result.skipped = self.load.skipped
                self.result.failures = len(self.load.errors())
                self.result.load_s = time.monotonic() - self._load_started
            except Exception as exc:
                problems.append(f"load: {exc}")
            self.load = None
        if self.controller is not None:
            try:
                self.controller.stop()
            except Exception as exc:
                problems.append(f"controller: {exc}")
            self.controller = None
        if self.prom is not None:
            self.prom.close()
            self.prom = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.stack is not None:
            try:
                self.stack.stop()
            except Exception as exc:
                problems.append(f"stack: {exc}")
            self.stack = None
        if problems:
            self.console.print(f"[red]{self.router}: could not stop cleanly: {'; '.join(problems)}")

    def _parts(self) -> tuple[Stack, Load, ControllerRunner, Store]:
        assert self.stack and self.load and self.controller and self.store
        return self.stack, self.load, self.controller, self.store

    def _prom(self) -> Prom:
        assert self.prom is not None
        return self.prom

    # -- releases -----------------------------------------------------------------------------------

    def _new_release(self) -> str:
        rid = self.svc.create(check_plan_file(self.plan, self.project), "alice").id
        self.svc.approve(rid, "bob")
        self.svc.act(rid, Action.STAGE, "alice")
        self.svc.act(rid, Action.START, "alice")
        return rid

    def _wait_at_half(self, rid: str, timeout_s: float = 90) -> None:
        """Until the controller has the release at 50 % and the client sees the canary answer."""
        _, load, controller, _ = self._parts()
        deadline = time.monotonic() + timeout_s
        while True:
            if not controller.alive():
                raise RuntimeError("the controller stopped")
            view = self.svc.get(rid)
            if view.status == "rolling_out" and view.progress.get("applied_weight") == 50:
                break
            if view.status in ("rolled_back", "rolling_back", "complete", "cancelled"):
                why = view.rollbacks[-1]["reason"] if view.rollbacks else view.status
                raise Discard(f"{rid} ended before 50 %: {why}")
            if time.monotonic() > deadline:
                raise Discard(f"{rid} did not reach 50 % within {timeout_s:g}s (status {view.status})")
            time.sleep(0.1)
        while time.monotonic() < deadline:
            share = load.share_since(time.monotonic() - 0.5)
            if share.get(CANARY, 0) >= 0.3 * sum(share.values()) > 0:
                return
            time.sleep(0.05)
        raise Discard(f"{rid}: the client saw no canary responses at 50 %")

    def _wait_rolled_back(self, rid: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            view = self.svc.get(rid)
            if view.status == "rolled_back":
                return view.rollbacks[-1]
            time.sleep(0.2)
        raise Discard(f"{rid} was not rolled back within {timeout_s:g}s (status {self.svc.get(rid).status})")

    def _abandon(self, rid: str) -> None:
        """Roll a discarded run's release back by hand, so the next run starts from weight 0."""
        view = self.svc.get(rid)
        if view.status in ("rolling_out", "paused", "verifying"):
            self.svc.act(rid, Action.ROLLBACK, "bob", reason="bench: discarded run")
        if view.status not in ("rolled_back", "complete", "cancelled", "planned", "approved"):
            self._wait_rolled_back(rid, 60)

    def _check_router_at_zero(self) -> None:
        stack, load, _, _ = self._parts()
        weight = stack.build_router().current_weight()
        if weight != 0:
            raise RuntimeError(f"{self.router} reads back canary weight {weight:g} between runs")
        if load.share_since(time.monotonic() - 0.5).get(CANARY, 0):
            raise RuntimeError("the canary answered within the last 0.5 s between runs")

    # -- revert ---------------------------------------------------------------------------------------

    def revert_run(self, n: int) -> RevertRun:
        _, load, _, store = self._parts()
        self._check_router_at_zero()
        rid = self._new_release()
        try:
            run_started = time.monotonic()
            self._wait_at_half(rid)
            time.sleep(random.uniform(0, INTERVAL_S))  # every phase of the analysis cadence
            complaint = record_signal(
                store, WallClock(), service=SERVICE, name="customer_complaint", actor="bench", note=f"revert run {n}"
            )
            log = self._wait_rolled_back(rid)
        except Discard:
            self._abandon(rid)
            raise
        if (log["trigger"], log["value"], log["weight_before"]) != ("complaints", 1, 50):
            raise Discard(
                f"{rid} rolled back by {log['trigger']} (value {log['value']}) at {log['weight_before']} %: "
                f"{log['reason']}"
            )
        detected, confirmed = wall(log["detected_at"]), wall(log["revert_confirmed_at"])
        time.sleep(max(0.0, confirmed + TAIL_S - time.time()))
        offset = time.time() - time.monotonic()
        hits = sorted((h for h in load.hits() if h.at >= run_started), key=lambda h: h.at)
        canary = [h for h in hits if h.version == CANARY]
        if not canary:
            raise Discard(f"{rid}: the client saw no canary response")
        last = canary[-1].at
        if last + offset > time.time() - 0.3:
            raise RuntimeError(f"{rid}: the canary still answers {TAIL_S:g}s after the router confirmed weight 0")
        after = [h.at for h in hits if h.at > last]
        lo, hi = detected - 1 - offset, confirmed + TAIL_S - offset
        errors = sum(1 for h in hits if lo <= h.at <= hi and h.status != 200)
        errors += sum(1 for f in load.errors() if lo <= f.at <= hi)
        return RevertRun(
            release=rid,
            complaint_at=complaint.at.timestamp(),
            detected_at=detected,
            decided_at=wall(log["decided_at"]),
            revert_started_at=wall(log["revert_started_at"]),
            confirmed_at=confirmed,
            last_canary_at=last + offset,
            resolution_s=(after[0] - last) if after else math.nan,
            client_errors=errors,
        )

    # -- detection ------------------------------------------------------------------------------------

    def _wait_canary_clean(self, timeout_s: float = 60) -> None:
        """Until no 5xx of the canary is left in the errors trigger's window."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self._prom().value(CANARY_5XX_IN_WINDOW)
            if not value:
                return
            time.sleep(0.25)
        raise RuntimeError(f"the canary's 5xx did not leave the {ERROR_WINDOW_S}s window within {timeout_s:g}s")

    def _crossing(self, injected_at: float, until: float) -> float:
        """The first moment for which Prometheus answers the trigger's query above the threshold.

        Evaluated after the fact on a 10 ms grid, not only at scrape times: ``rate()`` extrapolates
        to the window's edges, and while the canary's 5xx counter starts the window at 0 that
        extrapolation (and so the ratio) changes between two scrapes.
        """
        for at, value in self._prom().series(CANARY_ERROR_RATE, injected_at, until, CROSSING_STEP_S):
            if value is not None and value > ERROR_THRESHOLD:
                return at
        raise Discard("Prometheus never answered the canary's error rate above the threshold before detection")

    def _previous_analysis(self, rid: str, detected: float) -> float | None:
        """When the analysis before the one that fired started (an analysis is dated when it starts
        querying, and ``detected`` is when the firing one's queries came back, so that one is the
        latest dated before ``detected``)."""
        _, _, _, store = self._parts()
        with store.transaction() as s:
            times = [a.timestamp() for a in s.execute(select(Analysis.at).where(Analysis.release_id == rid)).scalars()]
        earlier = sorted(a for a in times if a <= detected)
        return earlier[-2] if len(earlier) >= 2 else None

    def detect_run(self, n: int) -> DetectRun:
        stack, _, _, _ = self._parts()
        assert stack.canary is not None
        self._wait_canary_clean()
        self._check_router_at_zero()
        # The crossing is tied to Prometheus's scrape schedule (fixed offsets within each second), the
        # analyses to when the release started: a random start gives every phase between the two.
        time.sleep(random.uniform(0, INTERVAL_S))
        rid = self._new_release()
        poller: Poller | None = None
        try:
            self._wait_at_half(rid)
            poller = Poller(stack.prometheus_url, CANARY_ERROR_RATE, ERROR_THRESHOLD, PROM_POLL_S).start()
            time.sleep(random.uniform(0, INTERVAL_S) + 0.2)
            injected = time.time()
            poller.arm(injected)
            stack.canary.inject(error_rate=INJECTED_ERROR_RATE)
            try:
                log = self._wait_rolled_back(rid)
            finally:
                stack.canary.inject(error_rate=0.0)
        except Discard:
            self._abandon(rid)
            raise
        finally:
            if poller is not None:
                poller.stop()
        if (log["trigger"], log["weight_before"]) != ("errors", 50):
            raise Discard(f"{rid} rolled back by {log['trigger']} at {log['weight_before']} %: {log['reason']}")
        if any(v is not None and v > ERROR_THRESHOLD for v in poller.before):
            raise Discard(f"{rid}: the canary's error rate was above the threshold before the injection")
        detected = wall(log["detected_at"])
        time.sleep(max(0.0, wall(log["revert_confirmed_at"]) + TAIL_S - time.time()))
        return DetectRun(
            release=rid,
            injected_at=injected,
            crossing_at=self._crossing(injected, detected),
            first_seen_at=poller.first_seen_at,
            detected_at=detected,
            previous_analysis_at=self._previous_analysis(rid, detected),
            value=float(log["value"]),
        )

    # -- the runs ---------------------------------------------------------------------------------------

    def run_all(self) -> RouterResult:
        for kind, wanted, one, into in (
            ("revert", self.args.runs, self.revert_run, self.result.reverts),
            ("detect", self.args.detect_runs, self.detect_run, self.result.detects),
        ):
            attempts = 0
            while len(into) < wanted:
                attempts += 1
                if attempts > wanted + 5 + wanted // 2:
                    raise RuntimeError(f"{self.router}: too many discarded {kind} runs: {self.result.discarded}")
                try:
                    run = one(len(into) + 1)
                except Discard as exc:
                    self.result.discarded.append(f"{kind}: {exc}")
                    self.console.print(f"  [yellow]{self.router} {kind}: discarded: {exc}")
                    continue
                into.append(run)  # type: ignore[arg-type]
                self.console.print(f"  {self.router} {kind} {len(into):2d}/{wanted}: {describe(run)}")
        self.result.analysis_periods = self._analysis_periods()
        return self.result

    def _analysis_periods(self) -> list[float]:
        _, _, _, store = self._parts()
        with store.transaction() as s:
            rows = s.execute(
                select(Analysis.release_id, Analysis.at)
                .where(Analysis.weight == 50, Analysis.status == "rolling_out")
                .order_by(Analysis.release_id, Analysis.at)
            ).all()
        periods: list[float] = []
        for (r1, a1), (r2, a2) in itertools.pairwise(rows):
            if r1 == r2:
                periods.append((a2 - a1).total_seconds())
        return periods


def describe(run: RevertRun | DetectRun) -> str:
    if isinstance(run, RevertRun):
        return (
            f"complaint→trigger {run.complaint_to_detected_s * 1000:4.0f} ms, "
            f"trigger→confirmed {run.detected_to_confirmed_s * 1000:4.0f} ms, "
            f"trigger→no canary {run.detected_to_no_canary_s * 1000:4.0f} ms "
            f"(±{run.resolution_s * 1000:.0f} ms), errors {run.client_errors}"
        )
    seen = "-" if run.seen_delay_s is None else f"{run.seen_delay_s * 1000:.0f} ms"
    previous = run.previous_after_crossing_s
    return (
        f"injected→crossing {run.injected_to_crossing_s * 1000:4.0f} ms, crossing→trigger "
        f"{run.delay_s * 1000:4.0f} ms (from the 50 ms poll: {seen}), error rate {run.value:.3f}, "
        f"previous analysis {'-' if previous is None else f'{previous * 1000:+.0f} ms'} from the crossing"
    )


# ---------------------------------------------------------------------------------------- report


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.0f} ms"


def triple(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{ms(statistics.median(values))} / {ms(pct(values, 99))} / {ms(max(values))}"


def revert_ok(r: RouterResult) -> bool:
    return bool(r.reverts) and pct([x.detected_to_no_canary_s for x in r.reverts], 99) < TARGET_P99_S


def detect_ok(r: RouterResult) -> bool:
    return bool(r.detects) and max(d.delay_s for d in r.detects) <= INTERVAL_S


def revert_rows(results: Sequence[RouterResult]) -> list[list[str]]:
    rows = []
    for r in results:
        v = r.reverts
        rows.append(
            [
                r.router,
                str(len(v)),
                triple([x.detected_to_no_canary_s for x in v]),
                triple([x.detected_to_confirmed_s for x in v]),
                triple([x.detected_to_decided_s for x in v]),
                triple([x.confirmed_to_no_canary_s for x in v]),
                triple([x.complaint_to_detected_s for x in v]),
                ms(statistics.median([x.resolution_s for x in v])) if v else "-",
                str(sum(x.client_errors for x in v)),
                "pass" if revert_ok(r) else "FAIL",
            ]
        )
    return rows


REVERT_HEADERS = [
    "router",
    "rollbacks",
    "trigger → no canary (client)",
    "trigger → confirmed (controller)",
    "trigger → decided",
    "confirmed → no canary",
    "complaint → trigger",
    "resolution",
    "client errors",
    "p99 < 1 s",
]


def detect_rows(results: Sequence[RouterResult]) -> list[list[str]]:
    rows = []
    for r in results:
        d = r.detects
        delays = [x.delay_s for x in d]
        seen = [x.seen_delay_s for x in d if x.seen_delay_s is not None]
        rows.append(
            [
                r.router,
                str(len(d)),
                f"{ms(statistics.median(delays))} / {ms(max(delays))}" if d else "-",
                f"{ms(statistics.median(seen))} / {ms(max(seen))}" if seen else "-",
                f"{ms(statistics.median([x.injected_to_crossing_s for x in d]))}" if d else "-",
                f"{sum(1 for x in delays if x <= INTERVAL_S)}/{len(d)}",
                (
                    f"{ms(statistics.median(r.analysis_periods))} / {ms(max(r.analysis_periods))}"
                    if r.analysis_periods
                    else "-"
                ),
                "pass" if detect_ok(r) else "FAIL",
            ]
        )
    return rows


DETECT_HEADERS = [
    "router",
    "runs",
    "crossing → trigger (median / max)",
    "first poll seeing it → trigger",
    "injection → crossing (median)",
    f"within {INTERVAL_S} s",
    "analysis period (median / max)",
    f"≤ {INTERVAL_S} s",
]


def print_tables(console: Console, results: Sequence[RouterResult]) -> None:
    table = Table(title="Revert: trigger fires → traffic off the canary (median / p99 / max)")
    for h in REVERT_HEADERS:
        table.add_column(h)
    for row in revert_rows(results):
        table.add_row(*row)
    console.print(table)
    table = Table(title="Detection: the metric crosses its threshold in Prometheus → the trigger fires")
    for h in DETECT_HEADERS:
        table.add_column(h)
    for row in detect_rows(results):
        table.add_row(*row)
    console.print(table)
    for r in results:
        console.print(load_line(r))
    for r in results:
        for d in r.discarded:
            console.print(f"[yellow]{r.router}: discarded {d}")


def load_line(r: RouterResult) -> str:
    rate = r.sent / r.load_s if r.load_s else 0.0
    return (
        f"{r.router}: the client sent {r.sent} requests in {r.load_s:.0f} s ({rate:.0f}/s), skipped {r.skipped} "
        f"ticks with every thread busy, {r.failures} got no response"
    )


def tools() -> dict[str, str]:
    """The versions of the real components the benchmark runs."""
    return {
        "nginx": short_version("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "haproxy": short_version("HAProxy", [shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"]),
        "prometheus": short_version("Prometheus", ["prometheus", "--version"]),
    }


def short_version(name: str, cmd: Sequence[str]) -> str:
    """``nginx 1.22.1`` out of ``nginx version: nginx/1.22.1`` (the whole first line if it does not parse)."""
    line = command_version(cmd)
    found = re.search(r"version:? (?:\S+/)?(\S+)", line)
    return f"{name} {found.group(1)}" if found else line


def docs_section(results: Sequence[RouterResult], args: argparse.Namespace, info: dict[str, str], when: str) -> str:
    rate = args.rate
    ratio = ""
    by = {r.router: r for r in results}
    if "nginx" in by and "haproxy" in by and by["nginx"].reverts and by["haproxy"].reverts:
        n = statistics.median(x.detected_to_no_canary_s for x in by["nginx"].reverts)
        h = statistics.median(x.detected_to_no_canary_s for x in by["haproxy"].reverts)
        ratio = f"\n\nMedian trigger → no canary, nginx / HAProxy: **{n / h:.1f}×**." if h > 0 else ""
    verdicts = []
    for r in results:
        if r.reverts:
            p99 = pct([x.detected_to_no_canary_s for x in r.reverts], 99)
            verdicts.append(f"{r.router} p99 {ms(p99)} ({'met' if revert_ok(r) else 'missed'})")
    detect_verdicts = []
    for r in results:
        if r.detects:
            worst = max(d.delay_s for d in r.detects)
            detect_verdicts.append(f"{r.router} at most {ms(worst)} ({'met' if detect_ok(r) else 'missed'})")
    discarded = [f"{r.router}: {d}" for r in results for d in r.discarded]
    discarded_text = (
        "Runs discarded and replaced: " + "; ".join(discarded) + "." if discarded else "No run was discarded."
    )
    loads = " ".join(load_line(r) + "." for r in results)
    p99_note = f": with {args.runs} runs it is the largest value" if args.runs <= 100 else ""
    nginx_note = ""
    if "nginx" in by and by["nginx"].reverts:
        late = statistics.median(x.confirmed_to_no_canary_s for x in by["nginx"].reverts)
        if late > 0:
            nginx_note = f"""

With nginx the client still reached the canary for a median {ms(late)} after the controller
confirmed the revert: `NginxRouter.set_weight` returns once nginx serves with new workers only,
and requests the old workers accepted before then are still answered by the canary. HAProxy's
runtime API applies the weight to the next request."""
    late_runs = [
        f"{r.router} `{d.release}`: crossing → trigger {ms(d.delay_s)}, the analysis before it is dated "
        f"{ms(d.previous_after_crossing_s or math.nan)} from the crossing"
        for r in results
        for d in r.detects
        if d.delay_s > INTERVAL_S
    ]
    late_note = ("\n\nOver the interval: " + "; ".join(late_runs) + ".") if late_runs else ""
    return reflow(f"""{MARK_START}
## Revert: trigger → no canary traffic (`bench/revert.py`)

How fast the controller takes traffic off a canary once a rollback-contract trigger fires, with
real processes: two sample service versions, Prometheus scraping every second, nginx or HAProxy
in front, a client sending steady traffic through the router, and shiprail's controller in a
process of its own. Targets: p99 of trigger → no canary under 1 s, and detection within one
analysis interval of the metric crossing its threshold.

Reproduce from the repository root (this section is rewritten by the program):

    .venv/bin/python -m bench.revert [--runs {RUNS}] [--detect-runs {DETECT_RUNS}] [--routers nginx,haproxy]

Measured {when} on {info["nproc"]} cores ({info["cpu"]}, Linux {info["kernel"]}), Python {info["python"]},
{info["nginx"]}, {info["haproxy"]}, {info["prometheus"]}.

Parameters: {args.runs} rollbacks and {args.detect_runs} detection runs per router; the client
sends {rate:g} requests a second, each on a fresh connection, from {CONCURRENCY} threads; steps 1,
10 and 50 % baking {BAKES[0]} s, {BAKES[1]} s and {BAKES[2]} s; analysis interval {INTERVAL_S} s;
controller poll {POLL_S:g} s (it wakes when an analysis is due regardless); controller in a
{args.controller}; the contract of `tests/e2e/stack.py` (`errors`: error_rate above
{ERROR_THRESHOLD:g} over {ERROR_WINDOW_S}s, min_samples 5; `slow`: latency p99 above 3× the
baseline over 5s; `complaints`: customer_complaint above 0 over 1m).

### Trigger → no canary

Per rollback: a release is started and left by the controller at 50 %; once the client sees the
canary answer, the bench waits a random fraction of an analysis interval and posts one
`customer_complaint`. The next analysis fires the `complaints` trigger; its time is the rollback
log's `detected_at`: when that analysis's queries came back, i.e. when the controller saw the
failure.

- *trigger → no canary (client)*: send time of the last request the canary answered - `detected_at`.
  Client send times (`time.monotonic()`) are put on the wall clock with an offset taken once per
  run. Requests go out every 1/{rate:g} s and at 50 % every other one is the canary's, so the
  cut-off is known to about 2/{rate:g} s = {2000 / rate:.1f} ms; *resolution* is the median gap from
  the last canary request to the next request sent.
- *trigger → confirmed (controller)*: `revert_confirmed_at - detected_at`, the router having read
  back weight 0; *trigger → decided*: `decided_at - detected_at` (the rollback recorded; the
  analysis's queries come before `detected_at`).
- *confirmed → no canary*: last canary request - `revert_confirmed_at`; positive when clients
  still reach the canary after the controller confirmed the revert.
- *complaint → trigger*: the complaint's receipt → `detected_at`: waiting for the next analysis, and
  its queries.
- *client errors*: non-200 answers and requests without one, from 1 s before detection to
  {TAIL_S:g} s after confirmation (summed over the runs).

p99 is the nearest-rank percentile{p99_note}. Every rollback is checked to be the `complaints`
trigger firing on the value 1 at 50 %: the complaints of earlier runs, still inside the 1m
window, counted for none of the later releases at any step (the controller counts signals only
since a release's rollout began).

{md_table(REVERT_HEADERS, revert_rows(results))}{ratio}

Target p99 < 1 s: {"; ".join(verdicts) or "not measured"}.{nginx_note}

### Detection: metric crossing → trigger

Per run: a release is started at a random moment (the crossing follows Prometheus's fixed
scrape schedule, the analyses the release's start, so this spreads their relative phase) and
brought to 50 % the same way, then the canary fails every other request
(`error_rate={INJECTED_ERROR_RATE:g}`) from a random moment on. The crossing is the moment the
metric crossed {ERROR_THRESHOLD:g} *as Prometheus sees it*: afterwards the bench evaluates the
provider's own PromQL for the `errors` trigger (`ERROR_RATE_QUERY` for 2.4.0 over
{ERROR_WINDOW_S}s) with a range query from the injection to `detected_at` on a
{CROSSING_STEP_S * 1000:.0f} ms grid, and takes the first point above the threshold (a grid
rather than the scrape timestamps, because `rate()` extrapolates to the window's edges: while
the 5xx counter starts the window at 0, the ratio moves between scrapes). A thread polling the
same query every {PROM_POLL_S * 1000:.0f} ms cross-checks it (*first poll seeing it*:
`detected_at` - the first poll answer above it). Between runs the canary is healed and the bench
waits until its 5xx have left the window.
*Analysis period*: time between consecutive analyses of a release at 50 %, over every run.

{md_table(DETECT_HEADERS, detect_rows(results))}

Target ≤ {INTERVAL_S} s: {"; ".join(detect_verdicts) or "not measured"}.{late_note}

{loads} {discarded_text}

{MARK_END}""")


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.revert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"rollbacks per router (default {RUNS})")
    parser.add_argument(
        "--detect-runs", type=int, default=DETECT_RUNS, help=f"detection runs per router (default {DETECT_RUNS})"
    )
    parser.add_argument("--routers", default=",".join(ROUTERS), help="comma-separated: nginx, haproxy")
    parser.add_argument("--rate", type=float, default=RATE, help=f"client requests a second (default {RATE:g})")
    parser.add_argument(
        "--controller", choices=("process", "thread"), default="process", help="where the controller runs"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the page whose revert section is rewritten")
    parser.add_argument("--json", type=Path, help="also write every run's raw times to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, stores)")
    args = parser.parse_args(argv)
    routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    if not routers or any(r not in ROUTERS for r in routers):
        parser.error(f"--routers takes nginx and/or haproxy, got {args.routers!r}")
    if args.runs < 1 or args.detect_runs < 0:
        parser.error("--runs must be at least 1 and --detect-runs at least 0")
    if not (math.isfinite(args.rate) and args.rate > 0):
        parser.error(f"--rate must be a positive number of requests a second, not {args.rate:g}")
    if not args.no_docs and (why := docs_problem(args.docs)):
        parser.error(why)
    args.routers = routers
    return args


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops every process like Ctrl-C does


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    console = Console(width=max(Console().width, 180))
    if not Path("tests/e2e/stack.py").is_file():
        console.print("[red]run this from the repository root: .venv/bin/python -m bench.revert")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="shiprail-bench-revert-"))
    info = machine(**tools())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"work directory {workdir}; {', '.join(f'{k}: {v}' for k, v in info.items())}")
    results: list[RouterResult] = []
    started = time.monotonic()
    try:
        for router in args.routers:
            console.print(f"[bold]{router}[/]: starting the stack")
            bench = RouterBench(router, workdir / router, args, console)
            try:
                bench.start()
                results.append(bench.run_all())
            finally:
                bench.stop()
                if bench.result not in results:
                    results.append(bench.result)
    except KeyboardInterrupt:
        console.print(f"[red]interrupted: every process was stopped; {args.docs} is unchanged")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(f"took {time.monotonic() - started:.0f} s")
    print_tables(console, results)
    if args.json:
        raw = [
            {
                **asdict(r),
                "reverts": [asdict(x) for x in r.reverts],
                "detects": [asdict(x) for x in r.detects],
            }
            for r in results
        ]
        args.json.write_text(json.dumps({"machine": info, "at": when, "results": raw}, indent=1), encoding="utf-8")
    if not args.no_docs:
        write_section(docs_section(results, args, info, when), MARK_START, MARK_END, args.docs)
        console.print(f"rewrote the revert section of {args.docs}")
    ok = all(revert_ok(r) and (detect_ok(r) or not args.detect_runs) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
