"""``shiprail controller``: run the reconcile loop for every active release of the store."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from shiprail import defaults
from shiprail.cli.context import open_store, releases, seconds_flag
from shiprail.cli.output import DbOpt, JsonOpt, console, emit_json, float_flag, int_flag
from shiprail.clock import WallClock
from shiprail.describe import utc
from shiprail.errors import BadInput, NotFound, ShiprailError, StoreError
from shiprail.project import open_project
from shiprail.schema.plan import DRY_RUN_SHOWN
from shiprail.store.db import first_line
from shiprail.store.holds import HELD_EVENT
from shiprail.store.rollouts import DRY_RUN_EVENT


def _print_event(release_id: str, kind: str, payload: dict[str, Any]) -> None:
    detail = ""
    if kind == "analysis.completed":
        verdicts = ", ".join(
            f"{t['trigger']}{DRY_RUN_SHOWN if t.get('dry_run') else ''} {t['verdict']}"
            for t in payload.get("triggers", [])
        )
        detail = f"{payload['verdict']} ({verdicts})"
    elif kind == DRY_RUN_EVENT:
        detail = str(payload.get("would"))  # what it would have done, not only the weight it breached at
    elif kind == HELD_EVENT:
        detail = str(payload.get("reason"))  # what holds it, not only the weight it holds at
    elif "weight" in payload:
        detail = f"{payload['weight']:g}%" + (f" — {payload['error']}" if payload.get("error") else "")
    elif "reason" in payload:
        detail = str(payload["reason"])
    # Not markup: errors carry brackets ("nginx: [emerg] ...", "[/srv/deploy]") that rich would eat or refuse.
    console.print(f"{WallClock().now():%H:%M:%S} {release_id} {kind} {detail}".rstrip(), markup=False)


def controller(
    release: Annotated[
        list[str] | None, typer.Option("--release", help="Drive only this release (repeatable).", show_default=False)
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Reconcile every active release once, then exit.")] = False,
    poll: Annotated[
        float,
        typer.Option(
            "--poll", help="Seconds between looks when nothing is due sooner.", parser=float_flag, metavar="FLOAT"
        ),
    ] = defaults.CONTROLLER_POLL_SECONDS,
    lease: Annotated[
        float,
        typer.Option(
            "--lease", help="Seconds a claim on a release lasts unless renewed.", parser=float_flag, metavar="FLOAT"
        ),
    ] = defaults.LEASE_SECONDS,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve GET /healthz (503 once the loop stops passing) and GET /metrics (Prometheus) on this port.",
            show_default=False,
            parser=int_flag,
            metavar="INTEGER",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="The address --metrics-port listens on.")
    ] = defaults.CONTROLLER_METRICS_HOST,
    db: DbOpt = None,
) -> None:
    """Drive every active release: set weights through routers, judge contracts, roll back."""
    seconds_flag("--poll", poll)
    seconds_flag("--lease", lease)
    if lease <= poll:
        raise BadInput(f"--lease ({lease:g}s) must be longer than --poll ({poll:g}s), or leases lapse between looks")
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise BadInput(f"--metrics-port must be a port from 0 to 65535, got {metrics_port}")
    if metrics_port is not None and once:
        # A server for one pass would be gone before anyone asked it.
        raise BadInput("--metrics-port serves a running controller; drop it with --once")
    project = open_project()
    # A database restarting as the controller starts is waited for, as the running loop rides it out
    # (--once is a single pass: it fails at once).
    svc = releases(db, project, wait_s=None if once else poll)
    for rid in release or ():
        try:
            svc.get(rid)  # an id the store does not hold would be driven never, and silently
        except NotFound as exc:
            raise NotFound(f"--release: {exc.message}") from None
    # The controller's parts are imported here, not at the top: every other command would pay for them.
    from shiprail.controller import Controller
    from shiprail.notifiers.notifier import Notifier

    ctl = Controller(svc, only=release, poll_s=poll, lease_s=lease, on_event=None if quiet else _print_event)
    # Notifications (issue #6): the communication plans' deliveries, in a thread beside the loop.
    notifier = Notifier(svc.store, svc.clock, svc.policy.channels, on_event=None if quiet else _print_event)
    if once:
        try:
            ctl.tick()
            notifier.tick()
        finally:
            ctl.close()
        why = "the log above says why (and its controller.error event, unless the store failed)"
        problems = [f"reconcile failed for {r}: {why}" for r in ctl.failed]
        problems += [
            f"the router cannot apply {retry.weight:g}% for {r} (retried with backoff, next at "
            f"{utc(retry.at)}): {retry.error}"
            for r, retry in sorted(ctl.router_failing.items())
        ]
        if problems:
            raise ShiprailError("; ".join(problems))
        return
    server = None
    if metrics_port is not None:
        health = ctl.report_health(project.known_services())
        try:
            server = health.serve(metrics_host, metrics_port)
        except OSError as exc:  # as `serve --host/--port`: a flag naming an address to listen on is bad input
            raise BadInput(
                f"--metrics-host {metrics_host} --metrics-port {metrics_port}: cannot listen there "
                f"({exc.strerror or exc}); pick another address or port"
            ) from None
        if not quiet:
            where = f"http://{metrics_host}:{server.server_port}"
            console.print(f"health on {where}/healthz, metrics on {where}/metrics")
    stop = threading.Event()
    notify_thread = threading.Thread(target=notifier.run, args=(stop,), name="shiprail-notifier", daemon=True)
    notify_thread.start()

    def _stop(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and stop.is_set():
            # Ctrl-C again: the person will not wait for a hung router call. Exiting here is a
            # kill -9 to the store: the intent recorded before the call tells the next controller
            # to settle it, and the leases lapse within --lease.
            os.write(2, f"stopped at once; its releases' leases lapse within {lease:g}s\n".encode())
            os._exit(128 + signum)
        if not stop.is_set() and not quiet:
            # os.write, not the console: a signal handler may interrupt a print under way.
            os.write(2, b"stopping after the call under way, if any (Ctrl-C again stops at once)\n")
        stop.set()

    # SIGHUP too: there is nothing to reload (each release's plan and services are read as it is
    # driven), and dying on it would keep the leases until they expire and the controllers row.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    if not quiet:
        console.print(f"controller {ctl.holder} running (poll {poll:g}s, lease {lease:g}s); Ctrl-C stops it")
    try:
        ctl.run(stop)
    finally:
        # run() also ends by raising (a newer shiprail migrated the store): the notifier stops with it.
        stop.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        notify_thread.join(defaults.NOTIFY_TIMEOUT_SECONDS)


def controllers(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the running controllers and the releases each one drives (its leases)."""
    from shiprail.controller.leases import lease_clock, running

    store = open_store(db, create="never")
    try:
        now = lease_clock(store, WallClock()).now()  # the clock the controllers' leases are timed by
        with store.transaction() as s:
            rows = running(s, now)
    except SQLAlchemyError as exc:  # e.g. an upgraded database whose controllers table the role may not read
        raise StoreError(
            f"cannot read who drives what in {store.display_url}: {first_line(exc)}; grant the role SELECT on "
            "leases and controllers (docs/operations.md)"
        ) from None
    if as_json:
        emit_json(
            {
                "controllers": [
                    {
                        "holder": holder,
                        "until": until.isoformat(),
                        "releases": [{"id": rid, "lease_until": lease.isoformat()} for rid, lease in held],
                    }
                    for holder, until, held in rows
                ]
            }
        )
        return
    if not rows:
        console.print("no controller is running")
        return
    table = Table("controller", "alive until", "releases", title_justify="left")
    for holder, until, held in rows:
        table.add_row(escape(holder), f"{until:%H:%M:%S}Z", escape(", ".join(rid for rid, _ in held)) or "-")
    console.print(table)
