"""The controller: drives every active release of a store to where its plan says it should be.

A reconcile loop in the style of a Kubernetes controller. For each release it holds the lease on,
it reads the release and its rollout progress from the store, asks the pure ``decide`` what to do
next, and does it:

- ``SetWeight``: record the intent (a ``router_intents`` row and an audit event), call the router
  with retries and backoff, read the weight back, and record the outcome with the new progress in
  one transaction. A controller that finds an intent still open (its predecessor died between
  acting and recording) reads the router back first and only calls it when the weight is not
  there, so a weight is never applied twice.
- ``Analyse``: judge every trigger of the contract (``controller.analysis``), store the analysis
  and the progress it implies, and take the move it forces (rollback, pause, resume).
- ``Move``: a lifecycle action through ``Releases.act``, with the same gates a person faces.

Everything the loop knows lives in the store, so a ``kill -9`` at any point loses nothing: a new
controller carries on from the last recorded outcome.

Routers have no fencing token, so the lease is the fence: it is kept renewed by a heartbeat while
a router call runs (bounded by the router's own timeout), and a call that still lands after its
controller lost the lease leaves a ``stale`` intent, which the next holder settles by reading the
router back and setting the weight the store says, even on a release that is over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from shiprail import defaults
from shiprail.checks.probes import run_probe
from shiprail.clock import WallClock
from shiprail.controller import leases
from shiprail.controller.analysis import History, Measured, evaluate, metrics_now
from shiprail.controller.health import ControllerHealth, ReleaseGauge, TriggerGauge
from shiprail.controller.replays import ReleaseReplays
from shiprail.domain.anchoring import Mark, anchor_due, next_look
from shiprail.domain.contract import Sample, Streaks, TriggerResult
from shiprail.domain.engine import ReleaseState
from shiprail.domain.freezes import frozen
from shiprail.domain.rollout import (
    Analyse,
    Move,
    Progress,
    RolloutPlan,
    SetWeight,
    Wait,
    analysed,
    decide,
    dry_run_breaches,
    target_weight,
)
from shiprail.domain.rollout import weight_confirmed as confirm_progress
from shiprail.domain.states import DRIVEN, Action, Gate, Status
from shiprail.errors import GateFailed, IllegalTransition, SchemaChanged, StoreError
from shiprail.judges.contract import Replay
from shiprail.project import anchor_log
from shiprail.providers import build_provider
from shiprail.providers.base import Provider
from shiprail.providers.push import count_signals
from shiprail.releases import SYSTEM_ACTOR_PREFIX, Releases, RollbackCause, resolved_of, state_of, stored_cause
from shiprail.routers import RouterError, build_router
from shiprail.routers.base import Router
from shiprail.schema.plan import Trigger
from shiprail.schema.resolved import ResolvedRelease, canonical_json
from shiprail.store import anchors, audit
from shiprail.store.db import store_away, store_error_text
from shiprail.store.holds import HELD_EVENT, HOLDING_GATES, new_hold
from shiprail.store.models import Analysis, AuditEvent, Release, RollbackLog, RouterIntent
from shiprail.store.rollouts import (
    DRY_RUN_EVENT,
    METRICS_AFTER_EVENT,
    STALE,
    latest_analysis,
    latest_intent,
    load_progress,
    open_rollback,
    pending_intent,
    regression_increments,
    revert_stuck_after,
    save_progress,
)
from shiprail.store.rows import iso

log = logging.getLogger(__name__)

ACTOR = f"{SYSTEM_ACTOR_PREFIX}controller"
# A confirmed rollback whose metrics-after are not read yet (the next pass reads them).
METRICS_PENDING = "null"
# Decisions one release may take in one pass before others get their turn.
STEPS_PER_PASS = 20

T = TypeVar("T")

RouterFactory = Callable[[ResolvedRelease], Router]
ProviderFactory = Callable[[ResolvedRelease], Provider]


def rollout_plan(r: ResolvedRelease) -> RolloutPlan:
    """The parts of a resolved release the pure rollout rules read."""
    return RolloutPlan(
        weights=tuple(float(s.weight) for s in r.steps),
        bakes_s=tuple(int(s.bake or 0) for s in r.steps),
        analysis_interval_s=int(r.analysis_interval),
        verify_window_s=int(r.verify_window),
        on_no_data=r.contract.on_no_data,
        no_data_limit=defaults.NO_DATA_LIMIT,
    )


def retry_delay(passes: int, weight: float | None) -> timedelta:
    """How long to wait after ``passes`` failed passes in a row at ``weight`` (None: passes that raised).

    The wait doubles from ``ROUTER_RETRY_SECONDS`` with each failed pass in a row, up to
    ``ROUTER_RETRY_MAX_SECONDS``, or ``ROLLBACK_RETRY_MAX_SECONDS`` for a rollback's weight 0
    (and for a pass that raised, which may be a rollback's too): a revert waits at most a
    minute once the router heals.
    """
    cap = defaults.ROUTER_RETRY_MAX_SECONDS if weight else defaults.ROLLBACK_RETRY_MAX_SECONDS
    return timedelta(seconds=min(defaults.ROUTER_RETRY_SECONDS * 2 ** min(passes - 1, 30), cap))


def failed_passes(intent: RouterIntent) -> int:
    """The failed passes in a row at an intent's weight: each adds its ``ROUTER_ATTEMPTS`` calls.

    A failed intent is opened again for the next pass at the same weight (``_open_intent``), so
    its attempts are those passes' alone; another weight, or a success, starts a new intent.
    """
    return max(1, intent.attempts // defaults.ROUTER_ATTEMPTS)


@dataclass(frozen=True)
class Retry:
    """A weight the release's last pass failed to apply: when to try it again, and the last error."""

    weight: float
    at: datetime
    error: str


# The ways an anchor due can fail that are the world's doing, not a bug (each a metric label).
ANCHOR_FAILURE_KINDS = frozenset({"chain", "log", "write", "locked", "store"})


@dataclass(frozen=True)
class Hold:
    """A promotion a gate the controller cannot wait out refused, recorded once; till it lifts the
    step holds (still analysed, its rollback armed) and the promotion is not asked again.

    ``until``: a deployment freeze, held until it ends. ``on_call``: the on_call gate, held while
    this person is still on call (only a handover or an edit of shiprail.yaml changes the verdict).
    ``person``: a step with ``promote: manual``, held until a person promotes it.
    """

    step: int | None
    until: datetime | None = None
    on_call: str | None = None
    person: bool = False


@dataclass
class Outage:
    """The store failing this controller's passes: since when, why, and how it is recorded.

    Recorded once as it begins (``controller.store_unreachable``, written at the first pass the store
    takes it, which may be the one that sees it end) and once as it ends (``controller.store_reachable``,
    with its duration), not as a ``controller.error`` per release and pass: an outage of minutes
    would otherwise fill the hash-chained trail with the same line, once per release per pass that
    reached the store between cuts.
    """

    since: datetime
    error: str
    last_error: str
    passes: int = 1  # the passes it failed
    recorded: bool = False  # its beginning is in the audit trail
    answered: datetime | None = None  # since when every pass reached the store (it ends after a while)


@dataclass(frozen=True)
class Snapshot:
    """A release as one reconcile step saw it."""

    release_id: str
    revision: int
    state: ReleaseState
    resolved: ResolvedRelease
    progress: Progress
    intent_id: int | None
    intent_weight: float | None
    retry: Retry | None = None  # None: the last pass did not fail
    unsettled: bool = False  # a stale router call awaits settling (read only when asked: ``_snapshot``)


class Controller:
    """Reconciles the releases of one store; one instance per process.

    ``routers`` and ``providers`` build the plugins for a release (by default from the service
    file captured when the release was created); ``only`` limits the controller to some releases
    (``release start --wait``); ``holder`` names it in leases.
    """

    def __init__(
        self,
        releases: Releases,
        *,
        routers: RouterFactory | None = None,
        providers: ProviderFactory | None = None,
        only: Collection[str] | None = None,
        holder: str | None = None,
        poll_s: float = defaults.CONTROLLER_POLL_SECONDS,
        lease_s: float = defaults.LEASE_SECONDS,
        heartbeat_s: float = defaults.LEASE_RENEW_SECONDS,
        on_event: Callable[[str, str, dict[str, Any]], None] | None = None,
        project_root: Path | None = None,
    ) -> None:
        self.releases = releases
        self.store = releases.store
        self.clock = releases.clock
        # Leases and the running controllers are timed by the database's clock (PostgreSQL), which
        # every controller host shares: a host's clock minutes off takes or keeps no lease wrongly.
        self.lease_clock = leases.lease_clock(self.store, self.clock)
        self.only = set(only) if only is not None else None
        self.holder = holder or leases.new_holder()
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self._make_router = routers
        self._make_provider = providers or self._default_provider
        self._routers: dict[str, Router] = {}
        self._providers: dict[str, Provider] = {}
        self._held: set[str] = set()
        self._probe_runs: dict[tuple[str, str], tuple[datetime, TriggerResult]] = {}
        self._replays: dict[str, ReleaseReplays] = {}
        # Per release: when its rollout began (its first router intent), once it has one; it never moves.
        self._began: dict[str, datetime] = {}
        # Per release whose reconcile raised: passes that raised in a row, and when to try again.
        # A router's failures back off from the store instead (Snapshot.retry), so a restarted
        # controller or one taking over keeps their backoff.
        self._errors: dict[str, tuple[int, datetime]] = {}
        # Per release whose promotion a freeze, the on_call gate or a step's `promote: manual` refused
        # (each refusal is stored, audited and shown by release show): what holds it, so the
        # promotion is not asked again.
        self._holds: dict[str, Hold] = {}
        self.on_event = on_event
        self.failed: list[str] = []  # the releases whose reconcile raised in the last tick
        self.router_failing: dict[str, Retry] = {}  # the releases the router failed in the last tick
        self._unshared = False  # warned that the controllers table cannot be written
        self._outage: Outage | None = None  # the store failing the passes, while it does
        self.health: ControllerHealth | None = None  # told of every pass (shiprail controller --metrics-port)
        self._http: httpx.Client | None = None
        self._stop: threading.Event | None = None  # run()'s: once set, no new decision or router call
        # Anchoring the audit chain (shiprail.yaml's audit.anchors, relative to the project directory).
        watch = releases.policy_watch
        self._root = project_root or (watch.path.parent if watch is not None else None)
        self._anchor_log: Path | None = None  # the log the state below is about
        self._anchor_last: Mark | None = None  # its last anchor, once read (None: none, or not read yet)
        self._anchor_read = False
        self._anchor_failed_at: datetime | None = None
        self._anchor_said: set[str] = set()  # the kinds of failure logged since anchoring last worked
        self._anchor_unsigned_said = False

    def report_health(self, services: Iterable[str] = ()) -> ControllerHealth:
        """Report every pass to a new ``ControllerHealth`` (``/healthz``, ``/metrics``) and return it.

        The loop counts as stuck once no pass has ended for ``CONTROLLER_STALE_POLLS`` polls, or one
        lease when that is longer. ``services``: those whose finished counters start at 0.
        """
        self.health = ControllerHealth(
            self.clock,
            self.holder,
            stale_after_s=max(defaults.CONTROLLER_STALE_POLLS * self.poll_s, self.lease_s),
            services=services,
        )
        return self.health

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    # ------------------------------------------------------------------------------ plugins

    def _default_router(self, release_id: str, r: ResolvedRelease) -> Router:
        return build_router(
            r.target.router,
            service=r.service,
            version=r.version,
            baseline=r.baseline,
            release=release_id,
            store=self.store,
            clock=self.clock,
        )

    def _default_provider(self, r: ResolvedRelease) -> Provider:
        return build_provider(
            r.target.provider,
            clock=self.clock,
            stable=r.baseline,
            canary=r.version,
            store=self.store,
            service=r.service,
        )

    def _router(self, snap: Snapshot) -> Router:
        if snap.release_id not in self._routers:
            made = self._make_router
            router = made(snap.resolved) if made else self._default_router(snap.release_id, snap.resolved)
            self._routers[snap.release_id] = router
        return self._routers[snap.release_id]

    def _provider(self, snap: Snapshot) -> Provider:
        if snap.release_id not in self._providers:
            self._providers[snap.release_id] = self._make_provider(snap.resolved)
        return self._providers[snap.release_id]

    # ------------------------------------------------------------------------------ the loop

    def active(self) -> list[str]:
        """Ids of the releases the controller should drive now."""
        unsettled = select(RouterIntent.release_id).where(RouterIntent.status == STALE)
        with self.store.transaction() as s:
            query = (
                select(Release.id)
                .where(Release.status.in_([x.value for x in DRIVEN]) | Release.id.in_(unsettled))
                .order_by(Release.id)
            )
            ids = list(s.execute(query).scalars())
        return [i for i in ids if self.only is None or i in self.only]

    def _reload_policy(self) -> None:
        """Take shiprail.yaml again when it changed: an emergency freeze or a person who left counts now."""
        channels = self.releases.policy.channels
        if not self.releases.reload_policy(log, "its people, roles, overrides and freezes count from this pass"):
            return
        if self.releases.policy.channels != channels:
            # The notifier was built with the channels at start (and their secrets from the environment).
            log.warning(
                "shiprail.yaml's channels changed too: notifications keep the channels this process "
                "started with until it is restarted"
            )
        self._holds.clear()  # a freeze lifted or moved, a person given the role: ask again

    def tick(self) -> datetime | None:
        """Reconcile every active release once; when one next needs a look (None: nothing is due).

        ``failed`` then names the releases whose reconcile raised (logged, and a ``controller.error`` event),
        ``router_failing`` those whose router failed to apply their weight or still waits out a failure's backoff.
        """
        wake: datetime | None = None
        self.failed, self.router_failing = [], {}
        store_failed: Exception | None = None
        started = self.clock.now()
        # A newer shiprail may have migrated the store since this one opened it (a rolling upgrade):
        # stop rather than drive releases on a schema this code does not know.
        self.store.check_schema()
        self._reload_policy()
        active = self.active()
        # A release a person took out of the driven states (an override to complete, a cancel)
        # is never reconciled again: let go of its lease, plugins and kept tests here.
        for release_id in {*self._held, *self._routers, *self._providers, *self._replays, *self._began} - set(active):
            self._forget(release_id)
        share = self._share(active)
        for release_id in active:
            if self._stopping():
                break  # SIGTERM: the releases not looked at yet are the next controller's
            if release_id not in self._held and share is not None and len(self._held) >= share:
                continue  # another controller's share (it takes it at its next pass)
            if not self._hold(release_id):
                continue
            try:
                until = self.reconcile(release_id)
            except Exception as exc:
                # One release's broken plugin or a database hiccup must not stop the others.
                self.failed.append(release_id)
                failures, until = self._back_off(release_id)
                store = isinstance(exc, SQLAlchemyError | StoreError)
                # The database away is recorded once, as the outage begins and as it ends (``Outage``);
                # a statement it refused (a deadlock, a constraint) is this release's controller.error.
                away = store and store_away(exc)
                if store:
                    # The database's trouble is no bug: one line, not a traceback, at every pass it lasts.
                    why = store_error_text(exc)
                    log.warning("%s: reconcile failed: the store failed: %s", release_id, why)
                    if away:
                        store_failed = exc
                else:
                    log.exception("%s: reconcile failed", release_id)
                error = f"{type(exc).__name__}: {exc}"[:500]
                with contextlib.suppress(Exception), self.store.transaction() as s:
                    if not away:
                        retry_at = until.isoformat()
                        self._append(
                            s, release_id, "controller.error", error=error, failed_passes=failures, retry_at=retry_at
                        )
                    if leases.held_by(s, release_id, self.holder):
                        self._announce_stuck(s, release_id, error)
                self._drop_plugins(release_id)
            if until is not None:
                wake = until if wake is None else min(wake, until)
        if self.only is None:
            self._anchor()
        if store_failed is None:
            self._store_answered()
        elif not self.store.stopping:  # else the lock waits of a serve going were ended: no outage
            self._store_failed(store_failed)
        if self.health is not None:
            self.health.observe(started, self.clock.now(), len(self.failed), len(self._held), self._gauges())
        return wake

    # ------------------------------------------------------------------------------ store outages

    def _store_failed(self, exc: Exception) -> None:
        """A pass the store failed: an outage begins (recorded once, as soon as the store takes it) or goes on."""
        now, why = self.clock.now(), store_error_text(exc)
        outage = self._outage
        if outage is None:
            outage = self._outage = Outage(now, why, why)
        else:
            outage.passes += 1
            outage.last_error, outage.answered = why, None
        if outage.recorded:
            return
        try:
            with self.store.transaction() as s:
                self._outage_began(s, outage)
            outage.recorded = True
        except Exception as record_failed:  # the store is away: recorded once it takes it
            log.debug("the store outage since %s is not recorded yet: %s", iso(outage.since), record_failed)

    def _outage_began(self, s: Any, outage: Outage) -> None:
        self._append(
            s, None, "controller.store_unreachable", holder=self.holder, since=iso(outage.since), error=outage.error
        )

    def _store_answered(self) -> None:
        """A pass the store answered throughout: an outage ends once the store has answered for
        ``STORE_OUTAGE_SETTLE_SECONDS`` (a store that flaps is one outage, not one per flap). Its
        beginning, if the store took no write while it lasted, is recorded at once."""
        outage = self._outage
        if outage is None:
            return
        now = self.clock.now()
        if outage.answered is None:
            outage.answered = now
        settled = (now - outage.answered).total_seconds() >= defaults.STORE_OUTAGE_SETTLE_SECONDS
        if outage.recorded and not settled:
            return
        try:
            self._record_outage(outage, ended=settled)
        except (StoreError, SQLAlchemyError) as exc:  # gone again at once: the outage goes on
            self._store_failed(exc)

    def _record_outage(self, outage: Outage, *, ended: bool) -> None:
        """Record the outage's beginning (unless it is), and with ``ended`` its end (it is then over)."""
        until = outage.answered or self.clock.now()
        took = (until - outage.since).total_seconds()
        with self.store.transaction() as s:
            if not outage.recorded:
                self._outage_began(s, outage)
            if ended:
                self._append(
                    s,
                    None,
                    "controller.store_reachable",
                    holder=self.holder,
                    since=iso(outage.since),
                    until=iso(until),
                    outage_s=took,
                    failed_passes=outage.passes,
                    error=outage.error,
                    last_error=outage.last_error,
                )
        outage.recorded = True
        if ended:
            self._outage = None
            log.warning("the store answers again: it failed %d pass(es) over %s", outage.passes, _span(took))

    # ------------------------------------------------------------------------------ audit anchors

    def _anchor(self) -> None:
        """Append a checkpoint of the audit chain's head to the anchor log when one is due.

        Due (``anchor_due``): at most every ``audit.anchor_every``, only when the head moved since
        the last anchor, and not before ``ANCHOR_RETRY_SECONDS`` after a failure. A failure (the
        chain does not verify, the log does not hold, a full disk, the store away) is logged once
        per kind until anchoring works again; it never stops the releases being driven.
        """
        policy = self.releases.policy.audit
        path = anchor_log(self._root, self.releases.policy) if self._root is not None else None
        if path is None:
            return
        if path != self._anchor_log:  # a first look, or shiprail.yaml names another log now
            self._anchor_log, self._anchor_last, self._anchor_read, self._anchor_failed_at = path, None, False, None
            self._anchor_said.clear()
        now = self.clock.now()
        every = policy.anchor_every
        if self._anchor_read and now < next_look(now, last=self._anchor_last, every_s=every):
            return  # too soon for another anchor: the store is not even asked for its head
        shown_as = policy.anchors or str(path)
        try:
            with self.store.transaction() as s:
                head = audit.head(s)
            retry = min(defaults.ANCHOR_RETRY_SECONDS, every)
            last = self._anchor_last if self._anchor_read else None
            if not anchor_due(
                now, head=head, last=last, every_s=every, failed_at=self._anchor_failed_at, retry_s=retry
            ):
                return
            key = os.environ.get(defaults.AUDIT_KEY_ENV) or None
            taken = anchors.take(
                self.store, path, now=now, key=key, shown_as=shown_as, flag="audit.anchors", every_s=every
            )
        except Exception as exc:
            self._anchor_failed_at = now
            self._anchor_failed(exc, shown_as)
            return
        cp = taken.checkpoint
        at = datetime.fromisoformat(cp.at)
        self._anchor_last, self._anchor_read, self._anchor_failed_at = Mark(cp.seq, cp.hash, at), True, None
        if self.health is not None:
            self.health.anchored(cp.seq, at)
        if self._anchor_said:
            log.warning("audit anchors: %s is written to again", shown_as)
            self._anchor_said.clear()
        if taken.written:
            if cp.signature is None and not self._anchor_unsigned_said:
                self._anchor_unsigned_said = True
                log.warning(
                    "audit anchors: %s is not set, so the anchors written to %s are not signed and can be forged",
                    defaults.AUDIT_KEY_ENV,
                    shown_as,
                )
            log.info("audit anchors: anchored seq %d to %s, line %d", cp.seq, shown_as, taken.line)

    def _anchor_failed(self, exc: Exception, shown_as: str) -> None:
        """Say once per kind why no anchor was written (the next due pass tries again); count each."""
        if isinstance(exc, anchors.AnchorRefused):
            kind, why = exc.kind, exc.message
        elif isinstance(exc, SQLAlchemyError | StoreError):
            kind, why = "store", f"the store failed: {store_error_text(exc)}"
        else:
            kind, why = type(exc).__name__, f"{type(exc).__name__}: {exc}"
        if self.health is not None:
            self.health.anchor_failed(kind if kind in ANCHOR_FAILURE_KINDS else "other")
        if kind in self._anchor_said:
            log.debug("audit anchors: still no anchor written to %s: %s", shown_as, why)
            return
        self._anchor_said.add(kind)
        if kind in ANCHOR_FAILURE_KINDS:
            log.warning("audit anchors: no anchor written to %s: %s; trying again later", shown_as, why)
        else:
            log.error("audit anchors: no anchor written to %s: %s; trying again later", shown_as, why, exc_info=exc)

    def _gauges(self) -> list[ReleaseGauge] | None:
        """How the releases this controller holds stand in the store, for /metrics (None: unreadable now)."""
        rows: list[ReleaseGauge] = []
        if not self._held:
            return rows
        try:
            with self.store.transaction() as s:
                held = s.execute(select(Release).where(Release.id.in_(sorted(self._held))).order_by(Release.id))
                for release in held.scalars():
                    progress = load_progress(s, release.id)
                    last = latest_analysis(s, release.id)
                    triggers: list[TriggerGauge] = []
                    # The latest analysis wherever it was taken (its time is on /metrics too): a
                    # new step or a pause does not blank what the contract last said.
                    for row in [] if last is None else json.loads(last.results):
                        if not isinstance(row, dict) or not isinstance(row.get("trigger"), str):
                            continue  # not a trigger's row (a store written by another version)
                        judged = row.get("judge")
                        judged = judged if isinstance(judged, dict) else {}
                        triggers.append(
                            TriggerGauge(
                                row["trigger"],
                                str(row.get("verdict")),
                                _number(row.get("value")),
                                _number(judged.get("p_value")),
                                row.get("dry_run") is True,
                            )
                        )
                    rows.append(
                        ReleaseGauge(
                            release.id,
                            release.service,
                            release.version,
                            release.baseline,
                            release.status,
                            None if release.step is None else release.step + 1,
                            progress.applied_weight,
                            release.state_since,
                            None if last is None else last.at,
                            tuple(triggers),
                        )
                    )
        except (SQLAlchemyError, StoreError) as exc:
            # The pass already logged the store's trouble; /metrics keeps the last rows it had.
            log.debug("metrics: cannot read the held releases: %s", exc)
            return None
        except Exception:
            # Metrics are a view: whatever they trip on must not stop the loop that drives releases.
            log.exception("metrics: cannot show the held releases; /metrics keeps the last rows it had")
            return None
        return rows

    def _share(self, active: list[str]) -> int | None:
        """How many of ``active`` this controller drives; the releases it holds beyond that go to the others.

        Controllers in scaled mode share the active releases: each renews its presence every pass
        (``leases.announce``) and drives at most its fair share, so a controller that joins gets
        work instead of standing by while the first one drives everything. The releases handed
        over are taken at the other's next pass, as after a crash (the store says where each one
        is). Rollbacks in progress stay where they are. None: no limit (a controller for chosen
        releases, ``release start --wait``, drives them whatever the others do).
        """
        if self.only is not None:
            return None
        try:
            live = leases.announce(self.store, self.holder, self.lease_clock.now(), self.lease_s)
        except (StoreError, SQLAlchemyError) as exc:
            # E.g. an upgraded database whose new controllers table the app role was not granted:
            # drive what can be claimed, unshared, as before the table existed.
            if not self._unshared and not self.store.stopping:  # not the lock waits of a serve going
                why = store_error_text(exc)
                log.warning("cannot record this controller in the controllers table, so it does not share: %s", why)
                self._unshared = True
            return None
        share = leases.fair_share(len(active), live)
        held = [r for r in active if r in self._held]
        if len(held) <= share:
            return share
        with self.store.transaction() as s:
            rows = s.execute(select(Release.id, Release.status).where(Release.id.in_(held))).all()
        rolling_back = {rid for rid, status in rows if status == Status.ROLLING_BACK.value}
        keep = sorted(held, key=lambda r: r not in rolling_back)[:share]
        for release_id in held:
            if release_id not in keep and release_id not in rolling_back:
                log.info("%s: handed to another controller (fair share %d of %d)", release_id, share, len(active))
                self._forget(release_id)
        return share

    def _hold(self, release_id: str) -> bool:
        """Take or renew the lease on ``release_id``; False (and its plugins dropped) when another holds it."""
        try:
            held = leases.acquire(self.store, release_id, self.holder, self.lease_clock.now(), self.lease_s)
        except StoreError:
            held = False
        if not held:
            if release_id in self._held:
                self._held.discard(release_id)
                self._drop_plugins(release_id)
            return False
        if release_id not in self._held:
            if not self._attach(release_id):
                # Another controller finished it and let its lease go after ``active`` listed it.
                leases.give_up(self.store, release_id, self.holder, self.lease_clock.now())
                return False
            self._held.add(release_id)
        return True

    def _attach(self, release_id: str) -> bool:
        """Record ``controller.attached`` for a release whose lease was just taken, if it still needs
        driving (or settling after a stale router call); False, recording nothing, when it does not."""
        with self.store.transaction() as s:
            status = s.execute(select(Release.status).where(Release.id == release_id)).scalar_one_or_none()
            if status not in {x.value for x in DRIVEN} and not _has_stale_intent(s, release_id):
                return False
            self._append(s, release_id, "controller.attached", holder=self.holder)
        return True

    def run(self, stop: threading.Event | None = None, *, until_done: bool = False) -> None:
        """Reconcile until ``stop`` is set (or, with ``until_done``, no release is left to drive)."""
        stop = self._stop = stop or threading.Event()
        try:
            while not stop.is_set():
                try:
                    wake = self.tick()
                    if until_done and not self.active():
                        return
                except SchemaChanged:
                    raise  # not the database away: this shiprail must not go on (close() lets the leases go)
                except (StoreError, SQLAlchemyError) as exc:
                    # The database is away (restarting, failing over, connections cut): look again
                    # at the next poll. The pass did not end, so /healthz turns 503 if this lasts.
                    why = store_error_text(exc)
                    if not self.store.stopping:  # else the lock waits of a serve going were ended
                        log.warning("cannot reach the store: %s; looking again in %gs", why, self.poll_s)
                        self._store_failed(exc)
                    wake = None
                if stop.is_set():
                    return
                self._sleep_until(wake, stop)
        finally:
            self.close()

    def _sleep_until(self, wake: datetime | None, stop: threading.Event) -> None:
        poll = self.clock.now() + timedelta(seconds=self.poll_s)
        if not isinstance(self.clock, WallClock):
            # A simulated clock jumps straight to the next thing due; nobody acts between.
            self.clock.sleep_until(wake or poll)
            return
        # On the wall clock, look at least every poll interval: people act on releases meanwhile.
        delay = ((min(wake, poll) if wake else poll) - self.clock.now()).total_seconds()
        if delay > 0:
            stop.wait(delay)

    def close(self) -> None:
        """Release every lease, leave the running controllers and close the plugins that hold connections."""
        for release_id in list(self._held):
            try:
                leases.give_up(self.store, release_id, self.holder, self.lease_clock.now())
            except (StoreError, SQLAlchemyError) as exc:
                # A locked or unreachable store as the controller stops: the lease expires by itself.
                log.warning(
                    "could not let the lease of %s go (%s); it expires within %gs",
                    release_id,
                    store_error_text(exc),
                    defaults.LEASE_SECONDS,
                )
        self._held.clear()
        if self.only is None:
            with contextlib.suppress(StoreError, SQLAlchemyError):
                leases.withdraw(self.store, self.holder)
        outage = self._outage
        if outage is not None and outage.answered is not None:
            # Stopped while the store answered again, before the outage settled: it ended as far as this
            # controller saw; no later pass of its will say so.
            with contextlib.suppress(StoreError, SQLAlchemyError):
                self._record_outage(outage, ended=True)
        for plugin in [*self._routers.values(), *self._providers.values()]:
            closer = getattr(plugin, "close", None)
            if callable(closer):
                closer()
        self._routers.clear()
        self._providers.clear()
        self._replays.clear()
        self._began.clear()
        if self._http is not None:
            self._http.close()
            self._http = None

    def _probe_client(self) -> httpx.Client:
        """One HTTP client for every probe: a fresh one per run cost a TLS handshake (~40 ms) each."""
        if self._http is None:
            self._http = httpx.Client(follow_redirects=False)
        return self._http

    # ------------------------------------------------------------------------------ one release

    def _snapshot(self, release_id: str, *, settling: bool = False) -> Snapshot:
        """The release as the store has it now; ``settling``: with whether a stale router call awaits settling."""
        with self.store.transaction() as s:
            release = self.releases._load(s, release_id)
            intent = pending_intent(s, release_id)
            last = latest_intent(s, release_id)
            retry = None
            if last is not None and last.status == "failed" and last.finished_at is not None:
                at = last.finished_at + retry_delay(failed_passes(last), last.weight)
                retry = Retry(last.weight, at, last.detail)
            return Snapshot(
                release_id,
                release.revision,
                state_of(release),
                resolved_of(release),
                load_progress(s, release_id),
                intent.id if intent else None,
                intent.weight if intent else None,
                retry,
                settling and _has_stale_intent(s, release_id),
            )

    def _back_off(self, release_id: str) -> tuple[int, datetime]:
        """Count one more pass that raised; how many in a row, and when to try again."""
        failures = self._errors.get(release_id, (0, None))[0] + 1
        until = self.clock.now() + retry_delay(failures, None)
        self._errors[release_id] = (failures, until)
        return failures, until

    def reconcile(self, release_id: str) -> datetime | None:
        """Take the release's next decisions until it has to wait; when to look again (None: not driven)."""
        error = self._errors.get(release_id)
        if error is not None and error[1] > self.clock.now():
            return error[1]  # the last pass raised: not before its backoff
        analysed_here = False
        for step in range(STEPS_PER_PASS):
            # Renewed before every decision: a pass can outlast a lease when routers are slow.
            if step and not self._hold(release_id):
                return None
            snap = self._snapshot(release_id, settling=not step)
            if step and self._stopping() and snap.state.status is not Status.ROLLING_BACK:
                # Stopping: the next holder takes the next decision. A rollback decided in this
                # pass still gets its weight 0 now, not when some controller next comes round.
                return self.clock.now()
            if snap.unsettled:
                wait = self._settle(snap)
                if wait is not None:
                    return wait
                snap = self._snapshot(release_id)
            if snap.state.status not in DRIVEN:
                self._forget(release_id)
                return None
            plan = rollout_plan(snap.resolved)
            now = self.clock.now()
            decision = decide(plan, snap.state, snap.progress, now)
            if isinstance(decision, Wait):
                self._forget_error(release_id)
                return decision.until
            if isinstance(decision, SetWeight):
                retry = self._apply(snap, decision.weight)
                if retry is not None:
                    return retry.at
                self._forget_error(release_id)
            elif isinstance(decision, Analyse):
                if analysed_here:
                    # One analysis a pass: a provider slower than the interval (a Prometheus that
                    # stopped answering, each query running to its timeout) makes the next one due
                    # as soon as one ends, and analysing on would hold this pass for 20 of them,
                    # the other releases unlooked at and `release start --wait` showing nothing.
                    return self.clock.now()
                analysed_here = True
                stored = self._analyse(snap, plan)
                if stored is not None:
                    # The analysis took no move, and stored this progress under the lease at the
                    # release's revision: the next decision is taken from it, not from a read of
                    # what this pass has just written (most analyses leave the release waiting).
                    after = decide(plan, snap.state, stored, self.clock.now())
                    if isinstance(after, Wait):
                        self._forget_error(release_id)
                        return after.until
            elif decision.action is Action.FINISH_ROLLBACK and self._revert_unconfirmed(snap):
                # The progress already said 0 when the rollback was decided (a router that dropped
                # the canary, recorded as a drift): the revert is still asked of the router and read
                # back, so its log is confirmed and no rollback ends on an old reading.
                retry = self._apply(snap, 0.0)
                if retry is not None:
                    return retry.at
                self._forget_error(release_id)
            elif decision.action is Action.FINISH_ROLLBACK and self._metrics_pending(snap):
                continue
            elif not self._move(snap, decision, []):
                # The gates refused the move (a probe, a person's action in between): keep the
                # contract judged at its cadence rather than asking again and again.
                due = (snap.progress.last_analysis or now) + timedelta(seconds=plan.analysis_interval_s)
                if now >= due:
                    if analysed_here:
                        return now
                    analysed_here = True
                    self._analyse(snap, plan)
                    continue
                return due
        return self.clock.now()

    def _forget_error(self, release_id: str) -> None:
        self._errors.pop(release_id, None)

    def _drop_plugins(self, release_id: str) -> None:
        # The kept tests go too: after an error or another controller's turn, start from the store.
        self._replays.pop(release_id, None)
        self._began.pop(release_id, None)
        for cache in (self._routers, self._providers):
            plugin = cache.pop(release_id, None)
            closer = getattr(plugin, "close", None)
            if callable(closer):
                with contextlib.suppress(Exception):
                    closer()

    def _forget(self, release_id: str) -> None:
        self._drop_plugins(release_id)
        self._forget_error(release_id)
        self._holds.pop(release_id, None)
        if release_id in self._held:
            leases.give_up(self.store, release_id, self.holder, self.lease_clock.now())
            self._held.discard(release_id)

    # ------------------------------------------------------------------------------ weights

    def _call(self, snap: Snapshot, call: Callable[[], T], *, fenced: bool = True) -> T:
        """One router call, with the lease kept renewed while it runs (up to its timeout and a margin).

        ``fenced``: the call may change the router, so the lease is marked with its deadline while it
        runs (``leases.fence``); a read (``_read_weight``) changes nothing were it to outlive its
        controller, and is not.
        """
        router = self._router(snap)
        bound = float(getattr(router, "call_timeout_s", defaults.ROUTER_CALL_TIMEOUT_SECONDS))
        # A call that ends with its controller cannot land after it was killed: no fence, so the
        # release is not left undriven until the call's deadline (4 x timeout + 10 s for nginx).
        fenced = fenced and not getattr(router, "calls_end_with_caller", False)
        with self._kept(snap, bound, fenced=fenced):
            return call()

    def _read_weight(self, snap: Snapshot) -> float:
        """The weight the router holds: a router call, not fenced (it changes nothing)."""
        return self._call(snap, self._router(snap).current_weight, fenced=False)

    def _kept(self, snap: Snapshot, bound_s: float, *, fenced: bool = False) -> leases.Heartbeat:
        """A heartbeat on the release's lease for work that may take up to ``bound_s`` (and a margin);
        ``fenced`` for a router call (``leases.fence``)."""
        bound = timedelta(seconds=bound_s + defaults.LEASE_CALL_MARGIN_SECONDS)
        # A slow call within its timeouts is no stuck loop for /healthz.
        if self.health is not None:
            self.health.expect(self.clock.now() + bound)
        # The deadline is marked on the lease (``fenced``), which other controllers read by the lease clock.
        deadline = self.lease_clock.now() + bound
        return leases.Heartbeat(
            self.store,
            snap.release_id,
            self.holder,
            self.lease_clock,
            ttl_s=self.lease_s,
            every_s=self.heartbeat_s,
            deadline=deadline,
            fenced=fenced,
        )

    def _analysis_bound(self, snap: Snapshot) -> float:
        """The longest an analysis of ``snap`` may ask: two queries a trigger, one run a probe, each timed out."""
        query_s = float(getattr(self._provider(snap), "call_timeout_s", defaults.PROVIDER_CALL_TIMEOUT_SECONDS))
        r = snap.resolved
        probes = len(r.probes) if _in_verify(snap.state) else 0
        return 2 * len(r.contract.triggers) * query_s + probes * defaults.PROBE_TIMEOUT_SECONDS

    def _stale(self, s: Any, snap: Snapshot, intent_id: int, weight: float, why: str) -> None:
        """Record, in a transaction that found the lease lost, that this controller's router call
        for ``weight`` may have landed after another controller took the release over.

        The router may now hold a weight the store does not want (a step's, on a release that was
        rolled back meanwhile), and the router has no fencing token to refuse it: the ``stale``
        intent makes whichever controller holds the lease read the router back and put it right
        (``_settle``), even when the release is no longer driven.
        """
        now = self.clock.now()
        s.add(
            RouterIntent(
                release_id=snap.release_id,
                weight=weight,
                status=STALE,
                attempts=0,
                detail=f"called by {self.holder} after it lost the lease ({why})",
                created_at=now,
            )
        )
        self._append(s, snap.release_id, "router.stale", weight=weight, intent_id=intent_id, holder=self.holder)
        log.warning("%s: called the router for %g%% after losing the lease; not recorded", snap.release_id, weight)

    def _settle(self, snap: Snapshot) -> datetime | None:
        """Put the router back to what the store says after a stale call; None once done, else when to try again.

        A driven release is handed to the usual drift handling (the weight read back becomes the
        applied one, so the next decision sets the weight it needs through a new intent). A release
        that is over (rolled back, complete) is not driven any more: its weight is set here.
        """
        driven = snap.state.status in DRIVEN
        target = target_weight(rollout_plan(snap.resolved), snap.state)
        want = snap.progress.applied_weight if driven or target is None else target
        found: float | None = None
        if want is not None:
            try:
                found = self._read_weight(snap)
            except Exception as exc:  # unreadable: set the weight it must hold
                log.warning("%s: cannot read the router back after a stale call: %s", snap.release_id, exc)
            if found is None or not _same(found, want):
                if driven:
                    if found is not None:
                        self._drifted(snap)
                elif (retry := self._apply(replace(snap, intent_id=None, intent_weight=None), want)) is not None:
                    return retry.at  # the router's failure, backed off from the store
        with self.store.transaction() as s:
            if not leases.held_by(s, snap.release_id, self.holder):
                return self._back_off(snap.release_id)[1]
            stale = s.execute(
                select(RouterIntent).where(RouterIntent.release_id == snap.release_id, RouterIntent.status == STALE)
            ).scalars()
            closed = []
            for row in stale:
                row.status, row.finished_at = "settled", self.clock.now()
                closed.append(row.id)
            self._append(
                s,
                snap.release_id,
                "router.settled",
                stale_intents=closed,
                weight=want,
                found=found,
                reapplied=want is not None and (found is None or not _same(found, want)),
            )
        return None

    def _apply(self, snap: Snapshot, weight: float) -> Retry | None:
        """``_set_weight``, unless the last pass failed at ``weight`` and its backoff is not over.

        The failure to wait out, if any, is also noted in ``router_failing``. Another weight (a
        person rolled back meanwhile) goes to the router at once.
        """
        retry = snap.retry
        if retry is None or not _same(retry.weight, weight) or retry.at <= self.clock.now():
            retry = self._set_weight(snap, weight)
        if retry is not None:
            self.router_failing[snap.release_id] = retry
        return retry

    def _set_weight(self, snap: Snapshot, weight: float) -> Retry | None:
        """Apply ``weight`` through the router, recorded before and after; when to try again if it failed.

        None: confirmed, or no longer wanted. A failed pass is recorded on its intent (status
        ``failed``, ``attempts`` summed), which is where the next pass's backoff is read from.
        """
        if snap.intent_id is not None and snap.intent_weight == weight:
            # A controller set out to apply this weight and stopped before recording the outcome:
            # look before acting again.
            try:
                current = self._read_weight(snap)
            except Exception:  # unreadable: apply it again below
                current = None
            if current is not None and _same(current, weight):
                self._confirmed(snap, snap.intent_id, weight, attempts=0, took_s=0.0, resumed=True)
                return None
            intent_id = snap.intent_id
        else:
            intent_id = self._open_intent(snap, weight)
        # Built once the intent is on record: a router that cannot even be built (its plugin gone)
        # fails the pass, and a revert's first attempt (``revert_started_at``) is on record all the
        # same, so a revert stuck that way can be confirmed by hand.
        router = self._router(snap)
        started = time.monotonic()
        backoff = defaults.ROUTER_BACKOFF_SECONDS
        error = ""
        # Each distinct error: how often, first and last seen. The attempts of a pass are one
        # summary event, not one event each (an outage would flood the hash-chained audit trail).
        errors: dict[str, list[Any]] = {}
        attempts = 0
        for attempt in range(1, defaults.ROUTER_ATTEMPTS + 1):
            if attempt > 1 and self._stopping():
                break  # stopping: no more attempts; the failure is recorded, the next holder retries
            if attempt > 1 and not self._still_wanted(snap, weight):
                # A person (or another controller) moved the release during the backoff: never
                # apply a weight that is no longer wanted, e.g. an old step's after a rollback.
                why = "the release moved before the weight was applied"
                self._close_intent(snap, intent_id, weight, "superseded", why)
                return None
            try:
                self._call(snap, lambda: router.set_weight(weight))
                current = self._read_weight(snap)
                if _same(current, weight):
                    took_s = time.monotonic() - started
                    self._confirmed(snap, intent_id, weight, attempts=attempt, took_s=took_s, errors=_errors(errors))
                    return None
                error = f"the router reads back {current:g}% after {weight:g}% was set"
            except RouterError as exc:
                error = str(exc)
            except Exception as exc:  # a router plugin's bug is reported like a router error
                error = f"{type(exc).__name__}: {exc}"
            attempts = attempt
            seen = errors.setdefault(error, [0, self.clock.now(), None])
            seen[0] += 1
            seen[2] = self.clock.now()
            if weight == 0:
                # Attempts that hang until their timeout (a reload that never ends) make a pass last
                # minutes: a stuck revert is announced once past the threshold, not when the pass ends.
                self._stuck_so_far(snap, error)
            if attempt < defaults.ROUTER_ATTEMPTS and not self._stopping():
                self.clock.sleep_until(self.clock.now() + timedelta(seconds=backoff))
                backoff = min(backoff * 2, defaults.ROUTER_BACKOFF_MAX_SECONDS)
        with self.store.transaction() as s:
            if not leases.held_by(s, snap.release_id, self.holder):
                # Another controller drives the release now, and its intents; a failed call may
                # still have changed the router (a read-back that disagreed).
                self._stale(s, snap, intent_id, weight, f"the call failed: {error}")
                return Retry(weight, self.clock.now(), error)
            intent = s.get(RouterIntent, intent_id, with_for_update=True)
            assert intent is not None
            intent.status, intent.detail, intent.finished_at = "failed", error, self.clock.now()
            intent.attempts += attempts
            failures = failed_passes(intent)
            until = intent.finished_at + retry_delay(failures, weight)
            self._append(
                s,
                snap.release_id,
                "router.failed",
                weight=weight,
                intent_id=intent_id,
                attempts=attempts,
                attempts_total=intent.attempts,
                failed_passes=failures,
                error=error,
                errors=_errors(errors),
                retry_at=until.isoformat(),
            )
            if weight == 0:
                self._announce_stuck(s, snap.release_id, error)
        log.warning("%s: could not apply %g%%: %s", snap.release_id, weight, error)
        return Retry(weight, until, error)

    def _still_wanted(self, snap: Snapshot, weight: float) -> bool:
        """Whether ``weight`` is still what the release needs and this controller still drives it."""
        if not self._hold(snap.release_id):
            return False
        now = self._target_now(snap.release_id)
        return now == weight

    def _target_now(self, release_id: str) -> float | None:
        """The weight the release needs now (None: none)."""
        snap = self._snapshot(release_id)
        target = target_weight(rollout_plan(snap.resolved), snap.state)
        if target is None and snap.state.status not in DRIVEN:
            return snap.progress.applied_weight  # a release that is over keeps its last weight (_settle)
        return target

    def _close_intent(self, snap: Snapshot, intent_id: int, weight: float, status: str, detail: str) -> None:
        with self.store.transaction() as s:
            if not leases.held_by(s, snap.release_id, self.holder):
                # The controller that took the release over may be applying this intent; the
                # attempts made before it did may have changed the router.
                self._stale(s, snap, intent_id, weight, detail)
                return
            intent = s.get(RouterIntent, intent_id, with_for_update=True)
            if intent is not None and intent.status == "pending":
                intent.status, intent.detail, intent.finished_at = status, detail, self.clock.now()

    def _open_intent(self, snap: Snapshot, weight: float) -> int:
        now = self.clock.now()
        with self.store.transaction() as s:
            last = latest_intent(s, snap.release_id)
            if last is not None and last.status == "failed" and _same(last.weight, weight):
                # The same weight again after a failed pass: the same intent, open again. Its
                # router.intent is on record already; each failed pass adds one router.failed.
                last.status, last.finished_at = "pending", None
                return last.id
            stale = pending_intent(s, snap.release_id)
            if stale is not None:
                stale.status, stale.finished_at, stale.detail = "superseded", now, f"superseded by {weight:g}%"
            intent = RouterIntent(
                release_id=snap.release_id, weight=weight, status="pending", attempts=0, detail="", created_at=now
            )
            s.add(intent)
            s.flush()
            rollback = open_rollback(s, snap.release_id) if weight == 0 else None
            # The revert's first attempt: the rollback log keeps its time (``revert_started_at``).
            starts = rollback if rollback is not None and rollback.revert_started_at is None else None
            if starts is not None:
                starts.revert_started_at = now
            self._append_at(
                s,
                now,
                snap.release_id,
                "router.intent",
                weight=weight,
                intent_id=intent.id,
                **({"rollback_id": starts.id, "revert_started_at": now.isoformat()} if starts is not None else {}),
            )
            return intent.id

    def _confirmed(
        self,
        snap: Snapshot,
        intent_id: int,
        weight: float,
        *,
        attempts: int,
        took_s: float,
        resumed: bool = False,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        now = self.clock.now()
        rolled_back = False
        # Routers that can say more than their read-back (the flag router: which SDKs acknowledged).
        confirmation = None if resumed else getattr(self._router(snap), "confirmation", None)
        with self.store.transaction() as s:
            if not leases.held_by(s, snap.release_id, self.holder):
                # The router call outlasted the lease and another controller drives the release
                # now: its progress and intents are not ours to write. What the router did is
                # still a fact, recorded as such, and the holder puts the router right.
                self._stale(s, snap, intent_id, weight, "the call outlasted the lease")
                return
            intent = s.get(RouterIntent, intent_id, with_for_update=True)
            assert intent is not None
            intent.status, intent.finished_at = "done", now
            intent.attempts += attempts
            save_progress(s, snap.release_id, confirm_progress(load_progress(s, snap.release_id), weight, now), now)
            self._append(
                s,
                snap.release_id,
                "router.applied",
                weight=weight,
                intent_id=intent_id,
                attempts=attempts,
                seconds=round(took_s, 4),
                found_applied=resumed,
                **({"confirmation": confirmation} if confirmation else {}),
                **({"errors": errors} if errors else {}),
            )
            rollback = open_rollback(s, snap.release_id) if weight == 0 else None
            if rollback is not None:
                rollback.revert_started_at = rollback.revert_started_at or intent.created_at
                rollback.revert_confirmed_at = now
                took = (now - rollback.detected_at).total_seconds()
                rollback.met = None if rollback.max_duration_s is None else took <= rollback.max_duration_s
                rollback.metrics_after = METRICS_PENDING
                if confirmation:
                    rollback.confirmation = json.dumps(confirmation, sort_keys=True)
                self._append_at(
                    s,
                    now,
                    snap.release_id,
                    "rollback.confirmed",
                    rollback_id=rollback.id,
                    revert_started_at=iso(rollback.revert_started_at),
                    # What the router said of it (the flag router: which SDKs acknowledged), as the log keeps it.
                    confirmation=confirmation or None,
                    detected_to_confirmed_s=round(took, 4),
                    max_duration_s=rollback.max_duration_s,
                    met=rollback.met,
                )
                if _stuck_announced(s, snap.release_id):
                    # Those told the revert was stuck hear that it is done.
                    stuck_s = (now - rollback.decided_at).total_seconds()
                    self._append(
                        s,
                        snap.release_id,
                        "rollback.recovered",
                        rollback_id=rollback.id,
                        weight=0.0,
                        unconfirmed_s=round(stuck_s, 3),
                        reason=f"the router confirmed weight 0 {_span(stuck_s)} after the rollback was decided",
                    )
                rolled_back = True
                rollback_id = rollback.id
        if rolled_back:
            self._record_metrics_after(snap, rollback_id)
        elif weight > 0:
            # The next analysis's window begins now; a provider keeping its own reads reads here.
            read_now = getattr(self._provider(snap), "read_now", None)
            if callable(read_now):
                read_now()

    def _stuck_so_far(self, snap: Snapshot, error: str) -> None:
        """``_announce_stuck`` between a revert's attempts, while this controller holds the release."""
        with self.store.transaction() as s:
            if leases.held_by(s, snap.release_id, self.holder):
                self._announce_stuck(s, snap.release_id, error)

    def _announce_stuck(self, s: Any, release_id: str, error: str) -> None:
        """Announce, once, a rollback whose revert is still unconfirmed past the threshold.

        Called inside a transaction that holds the lease (its row locked), so two controllers
        never both announce it; the audit event is what the notifier delivers (``revert_stuck``).
        """
        rollback = open_rollback(s, release_id)
        if rollback is None:
            return
        limit = revert_stuck_after(rollback)
        waited = (self.clock.now() - rollback.decided_at).total_seconds()
        if waited < limit or _stuck_announced(s, release_id):
            return
        self._append(
            s,
            release_id,
            "rollback.stuck",
            rollback_id=rollback.id,
            weight=0.0,
            unconfirmed_s=round(waited, 3),
            threshold_s=limit,
            error=error,
            reason=f"the router has not confirmed weight 0 {_span(waited)} after the rollback was decided: {error}",
        )
        log.error("%s: the rollback is not confirmed after %s: %s", release_id, _span(waited), error)

    def _revert_unconfirmed(self, snap: Snapshot) -> bool:
        """Whether the release's rollback log still waits for the router to confirm weight 0."""
        with self.store.transaction() as s:
            return open_rollback(s, snap.release_id) is not None

    def _metrics_pending(self, snap: Snapshot) -> bool:
        """Fill in a confirmed rollback's metrics-after that a stopped controller left pending."""
        with self.store.transaction() as s:
            pending = s.execute(
                select(RollbackLog.id).where(
                    RollbackLog.release_id == snap.release_id, RollbackLog.metrics_after == METRICS_PENDING
                )
            ).scalar_one_or_none()
        if pending is None:
            return False
        self._record_metrics_after(snap, pending)
        return True

    def _record_metrics_after(self, snap: Snapshot, rollback_id: int) -> None:
        r = snap.resolved
        after = metrics_now(
            r.contract,
            r.target,
            self._provider(snap),
            version=r.version,
            baseline=r.baseline,
            interval_s=int(r.analysis_interval),
        )
        with self.store.transaction() as s:
            row = s.get(RollbackLog, rollback_id, with_for_update=True)
            # Still pending: a controller that read them too (a retry, or another after a restart)
            # found them written, and neither the row nor its event is written twice.
            if row is not None and row.metrics_after == METRICS_PENDING:
                row.metrics_after = canonical_json(after)
                # Stated in the chain with the row, so a package's rollback.json can be checked against it.
                self._append(s, snap.release_id, METRICS_AFTER_EVENT, rollback_id=rollback_id, metrics_after=after)

    # ------------------------------------------------------------------------------ analyses

    def _signals(self, snap: Snapshot) -> Callable[[str, int], float]:
        """Counts of pushed signals for the canary, never from before the rollout began."""
        began = self._began.get(snap.release_id)
        if began is None:
            with self.store.transaction() as s:
                began = s.execute(
                    select(func.min(RouterIntent.created_at)).where(RouterIntent.release_id == snap.release_id)
                ).scalar_one_or_none()
            if began is not None:
                self._began[snap.release_id] = began

        def count(name: str, window_s: int) -> float:
            now = self.clock.now()
            since = now - timedelta(seconds=window_s)
            if began is not None:
                # The window starts no earlier than the rollout (its first instant included).
                since = max(since, began - timedelta(microseconds=1))
            r = snap.resolved
            return count_signals(self.store, service=r.service, name=name, since=since, until=now, version=r.version)

        return count

    def _drifted(self, snap: Snapshot) -> bool:
        """Whether the router lost the weight the release is analysed at (a restarted HAProxy, an
        include file rewritten by hand); if so the router's real weight is recorded as the applied
        one (``router.drifted``), so the next decision sets the step's weight again and its bake
        starts over, instead of baking a weight the router no longer applies."""
        applied = snap.progress.applied_weight
        if applied is None:
            return False
        try:
            current = self._read_weight(snap)
        except Exception:  # unreadable: the analysis goes on; the next weight change reports it
            return False
        if _same(current, applied):
            return False
        if snap.intent_id is not None and snap.intent_weight is not None and _same(current, snap.intent_weight):
            # Not a drift: a controller applied the pending intent's weight and stopped before
            # recording it (the analysis of the old weight fell due before it was looked at).
            self._confirmed(snap, snap.intent_id, current, attempts=0, took_s=0.0, resumed=True)
            return True
        now = self.clock.now()
        with self.store.transaction() as s:
            release = self.releases._load(s, snap.release_id, lock=True)
            if release.revision != snap.revision or not leases.held_by(s, snap.release_id, self.holder):
                return True  # the release moved, or is driven elsewhere: the next pass looks again
            save_progress(s, snap.release_id, confirm_progress(load_progress(s, snap.release_id), current, now), now)
            self._append(s, snap.release_id, "router.drifted", expected=applied, found=current)
        log.warning("%s: the router holds %g%%, not %g%%", snap.release_id, current, applied)
        return True

    def _analyse(self, snap: Snapshot, plan: RolloutPlan) -> Progress | None:
        """Judge the contract now and store the analysis; the progress stored when that took no move, else None."""
        if self._drifted(snap):
            return None
        r = snap.resolved
        streaks = Streaks(snap.progress.streaks)
        # An analysis is dated when it starts asking: that is the moment its data describes, and
        # stamping it so keeps the cadence at the interval however long the queries take.
        now = self.clock.now()
        last = snap.progress.last_analysis
        # Rounded up: a provider that keeps its own reads (scrape) must still find the previous one
        # inside the window; the overlap, under a second, counts a few events twice on both versions.
        since_s = None if last is None else math.ceil((now - last).total_seconds())
        # Queries to a slow provider may outlast the lease: without the heartbeat another
        # controller would take the release over meanwhile and this analysis be thrown away, and
        # two controllers could go on taking it from each other with no analysis ever recorded.
        with self._kept(snap, self._analysis_bound(snap)):
            measured = evaluate(
                r.contract,
                r.target,
                self._provider(snap),
                self._signals(snap),
                version=r.version,
                baseline=r.baseline,
                interval_s=plan.analysis_interval_s,
                streaks=streaks,
                weight=snap.progress.applied_weight,
                since_s=since_s,
                history=self._history(snap.release_id),
            )
            if _in_verify(snap.state) and r.probes:
                measured += self._probe(snap)
        # The analysis reads the window up to `now`; it saw the failure only once its queries came
        # back: the rollback log's detection time (a slow provider's minutes are not the revert's).
        finished = self.clock.now()
        results = [m.result for m in measured]
        progress, move = analysed(plan, snap.state, replace(snap.progress, streaks=streaks.counts), results, now)
        progress, breaches = dry_run_breaches(progress, results)
        verdict = _verdict(measured)
        rows = [m.to_json() for m in measured]
        with self.store.transaction() as s:
            release = self.releases._load(s, snap.release_id, lock=True)
            if release.revision != snap.revision:
                return None  # someone moved the release while we measured: this analysis is of a past step
            if not leases.held_by(s, snap.release_id, self.holder):
                return None  # the analysis outlasted the lease: the controller holding it now analyses
            analysis = Analysis(
                release_id=snap.release_id,
                at=now,
                status=release.status,
                step=release.step,
                weight=snap.progress.applied_weight,
                verdict=verdict,
                results=canonical_json(rows),
            )
            s.add(analysis)
            s.flush()
            stored = save_progress(s, snap.release_id, progress, now)
            self._append(
                s,
                snap.release_id,
                "analysis.completed",
                verdict=verdict,
                step=release.step,
                weight=snap.progress.applied_weight,
                baked_s=round(progress.baked_s, 3),
                triggers=rows,
                # The row as the package lists it: its id, the release's state, and its time (when the
                # analysis read its window up to, before its queries; the event is appended after them).
                analysis_id=analysis.id,
                status=release.status,
                analysed_at=now.isoformat(),
            )
            for m in measured:
                if m.result in breaches:
                    self._append(
                        s, snap.release_id, DRY_RUN_EVENT, **_breach(m, release, snap.state, now, snap.progress)
                    )
        if move is None:
            return stored
        self._move(replace(snap, progress=progress), move, measured, detected_at=finished)
        return None

    def _history(self, release_id: str) -> History:
        """The release's regression tests, caught up with what was stored since the last analysis (read once)."""
        read = False

        def history(trigger: Trigger, kind: str) -> Replay:
            nonlocal read
            kept = self._replays.setdefault(release_id, ReleaseReplays())
            if not read:
                with self.store.transaction() as s:
                    kept.read(*regression_increments(s, release_id, kept.last))
                read = True
            test = kept.replay(trigger, kind)
            if test is None:  # built for other settings: start again from everything stored
                kept = self._replays[release_id] = ReleaseReplays()
                with self.store.transaction() as s:
                    kept.read(*regression_increments(s, release_id))
                test = kept.replay(trigger, kind)
                assert test is not None
            return test

        return history

    def _probe(self, snap: Snapshot) -> list[Measured]:
        """Verify's probes: each run when its interval has passed since its last run."""
        out: list[Measured] = []
        now = self.clock.now()
        for probe in snap.resolved.probes:
            key = (snap.release_id, probe.name)
            last = self._probe_runs.get(key)
            if last is None or (now - last[0]).total_seconds() >= probe.interval:
                last = (now, run_probe(probe, self._probe_client(), defaults.PROBE_TIMEOUT_SECONDS))
                self._probe_runs[key] = last
            result = last[1]
            out.append(Measured(result, Sample(result.value), None))
        return out

    # ------------------------------------------------------------------------------ moves

    def _move(self, snap: Snapshot, move: Move, measured: list[Measured], detected_at: datetime | None = None) -> bool:
        """Take a lifecycle action; False when its gates refused it (the loop waits, then looks again)."""
        cause: RollbackCause | None = None
        if move.action is Action.PROMOTE and self._still_held(snap):
            return False  # refused (and recorded) once: it holds until the freeze ends, a handover or a person
        if move.action is Action.ROLLBACK and not measured:
            cause = self._stored_cause(snap.release_id, move.reason)
        elif move.action is Action.ROLLBACK:
            fired = next((m.result for m in measured if m.result.verdict == "fail" and not m.result.dry_run), None)
            if fired is not None:
                cause = RollbackCause(
                    "trigger",
                    move.reason,
                    trigger=fired.trigger,
                    value=fired.value,
                    threshold=fired.threshold,
                    detected_at=detected_at,
                )
            else:
                cause = RollbackCause("no_data", move.reason, detected_at=detected_at)
        try:
            self.releases.act(snap.release_id, move.action, ACTOR, reason=move.reason, rollback=cause)
            if self.health is not None:
                self.health.finish(snap.resolved.service, move.action)
            if self.on_event is not None:
                with contextlib.suppress(Exception):
                    self.on_event(snap.release_id, f"release.{move.action.value}", {"reason": move.reason})
        except GateFailed as exc:
            log.info("%s: %s", snap.release_id, exc)
            if move.action is Action.PROMOTE and Gate.JUDGMENT.value in exc.gates:
                # Only a person moves it on, whatever else refused it: not asked again at this step.
                self._holds[snap.release_id] = Hold(snap.state.step, person=True)
            elif move.action is Action.PROMOTE and exc.gates == [Gate.FREEZE.value]:
                hits = frozen(self.releases.policy.freeze_windows(), snap.resolved.service, self.clock.now())
                if hits:
                    self._holds[snap.release_id] = Hold(snap.state.step, until=hits[0].until)
            elif move.action is Action.PROMOTE and exc.gates == [Gate.ON_CALL.value]:
                on_call = self.releases.on_call_now(snap.release_id)
                self._holds[snap.release_id] = Hold(snap.state.step, on_call=on_call)
            if move.action is Action.PROMOTE and HOLDING_GATES & set(exc.gates):
                self._announce_hold(snap)
            return False
        except IllegalTransition:
            return True  # the release moved under us; the next pass sees where it is
        return True

    def _still_held(self, snap: Snapshot) -> bool:
        """Whether a hold of this step's promotion still stands: its freeze not over, the same person on
        call, or a step a person promotes (still at it)."""
        hold = self._holds.get(snap.release_id)
        if hold is None or hold.step != snap.state.step:
            return False
        if hold.person:
            return True
        if hold.until is not None:
            return self.clock.now() < hold.until
        return self.releases.on_call_now(snap.release_id) == hold.on_call

    def _announce_hold(self, snap: Snapshot) -> None:
        """Record, once per hold, that a gate the controller cannot wait out refused its promotion (``held``)."""
        with self.store.transaction() as s:
            release = self.releases._load(s, snap.release_id, lock=True)
            if not leases.held_by(s, snap.release_id, self.holder):
                return
            hold = new_hold(s, release)
            if hold is not None:
                weight = snap.progress.applied_weight
                self._append(
                    s,
                    snap.release_id,
                    HELD_EVENT,
                    action=Action.PROMOTE.value,
                    state=snap.state.describe(),
                    weight=weight,
                    **hold,
                )

    def _stored_cause(self, release_id: str, reason: str) -> RollbackCause:
        """Why to roll back when the analysis that decided it was stored by a controller that
        stopped before acting on it: that analysis, with its time as the detection time."""
        with self.store.transaction() as s:
            return stored_cause(s, release_id, reason)

    # ------------------------------------------------------------------------------ audit

    def _append(self, s: Any, release_id: str | None, kind: str, **payload: Any) -> None:
        self._append_at(s, self.clock.now(), release_id, kind, **payload)

    def _append_at(self, s: Any, at: datetime, release_id: str | None, kind: str, /, **payload: Any) -> None:
        """Append an event at ``at``: the clock read the action wrote its rows with (one instant for both).
        ``release_id`` None: the controller's own (a store outage), shown as ``store``."""
        audit.append(s, at=at, actor=ACTOR, kind=kind, release_id=release_id, payload=payload)
        if self.on_event is not None:
            with contextlib.suppress(Exception):  # printing must never undo what was recorded
                self.on_event(release_id or "store", kind, payload)

    def _event(self, release_id: str, kind: str, **payload: Any) -> None:
        with self.store.transaction() as s:
            self._append(s, release_id, kind, **payload)


def _in_verify(state: ReleaseState) -> bool:
    """Whether Verify's probes watch the release: in Verify, or paused in it (the new version still
    serves all traffic, so a broken key flow still rolls it back)."""
    return state.status is Status.VERIFYING or (state.status is Status.PAUSED and state.paused_from is Status.VERIFYING)


def _has_stale_intent(s: Any, release_id: str) -> bool:
    """Whether a call that landed after its controller lost the lease left the router to settle."""
    found = s.execute(
        select(RouterIntent.id).where(RouterIntent.release_id == release_id, RouterIntent.status == STALE)
    ).first()
    return found is not None


def _stuck_announced(s: Any, release_id: str) -> bool:
    # A release rolls back at most once (rolled_back is final), so one event per release.
    found = s.execute(
        select(AuditEvent.seq).where(AuditEvent.release_id == release_id, AuditEvent.kind == "rollback.stuck").limit(1)
    ).first()
    return found is not None


def _errors(errors: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """A pass's failed attempts, one entry per distinct error: how many, first and last seen."""
    return [
        {"error": error, "count": count, "first_at": first.isoformat(), "last_at": last.isoformat()}
        for error, (count, first, last) in errors.items()
    ]


def _span(seconds: float) -> str:
    """``95`` as ``1m35s``."""
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def _number(value: object) -> float | None:
    """``value`` when it is a number as JSON gives them (not a bool), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=defaults.WEIGHT_TOLERANCE)


def _breach(m: Measured, release: Release, state: ReleaseState, at: datetime, progress: Progress) -> dict[str, Any]:
    """A dry-run trigger's breach as its audit event says it: what it would have done, where and on what."""
    r = m.result
    weight = progress.applied_weight
    where = f"{state.describe()} at {weight:g}%" if weight is not None else state.describe()
    return {
        "trigger": r.trigger,
        "reason": r.reason,
        "value": r.value,
        "threshold": r.threshold,
        "baseline": r.baseline,
        "p_value": None if m.judged is None else m.judged.p_value,
        "status": release.status,
        "paused_from": release.paused_from,
        "step": release.step,
        "weight": weight,
        "analysed_at": at.isoformat(),
        "would": f"dry run: trigger {r.trigger} would have rolled back {where}: {r.reason}",
    }


def _verdict(measured: list[Measured]) -> str:
    """The analysis's verdict: its armed triggers' (a dry run's verdict is only reported)."""
    verdicts = {m.result.verdict for m in measured if not m.result.dry_run}
    if "fail" in verdicts:
        return "fail"
    if "inconclusive" in verdicts:
        return "inconclusive"
    return "pass"
