"""``shiprail serve``: the API for SDKs and pushes, with the controller running inside."""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from shiprail import defaults
from shiprail.cli.context import releases
from shiprail.cli.controller import _print_event
from shiprail.cli.output import DbOpt, console, duration_flag, int_flag
from shiprail.durations import format_duration
from shiprail.errors import BadInput, SchemaChanged, ShiprailError
from shiprail.project import Project, open_project
from shiprail.providers.common import one_line

log = logging.getLogger(__name__)

# --root-path: a URL path of plain segments (the status pages put it into links as it is).
ROOT_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")

if TYPE_CHECKING:
    from shiprail.serve import SdkService


def sdk_service(project: Project, name: str) -> SdkService | None:
    """``name``'s SDK settings when its service file is valid and has a flag router, else None.

    Raises BadInput for a key no SDK could send (see below), and the file's error when it cannot be read.
    """
    if name not in project.known_services():
        return None
    from shiprail.serve import SdkService  # FastAPI is loaded by `serve` only, not by every command

    service, _doc, problems = project.load_service(name)
    if service is None or problems or service.router.type != "flag":
        return None
    env = service.router.sdk_key_env
    key = os.environ.get(env) or None
    if key is not None:
        # SDKs could never send such a key (the SDK refuses it too), and every one would be refused.
        from shiprail.sdk.client import sdk_key_problem

        problem = sdk_key_problem(key)
        if problem is not None:
            raise BadInput(
                f"{env}, the SDK key of {name}, {problem}: SDKs cannot send it in an HTTP header; "
                "use letters, digits and punctuation"
            )
    return SdkService(name, env, key)


def later_sdk_service(project: Project, name: str, warned: dict[str, str]) -> SdkService | None:
    """As :func:`sdk_service`, for a service an SDK asks about while serve runs.

    A file that cannot be read (a YAML syntax error, not UTF-8) refuses serve's start, but once it
    runs it is a service without a flag router (404): its problem goes to the log, not to the SDK,
    once per problem (``warned``: the last one logged per service), not at every SDK's retry.
    """
    try:
        found = sdk_service(project, name)
    except ShiprailError as exc:
        problem = one_line(str(exc))
        if warned.get(name) != problem:
            warned[name] = problem
            log.warning("%s; its SDKs get 404 until it is fixed", problem)
        return None
    warned.pop(name, None)
    return found


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = defaults.SERVE_HOST,
    port: Annotated[
        int,
        typer.Option("--port", help="Port to listen on; 0 picks a free one.", parser=int_flag, metavar="INTEGER"),
    ] = defaults.SERVE_PORT,
    no_controller: Annotated[
        bool, typer.Option("--no-controller", help="Serve only; a separate `shiprail controller` drives releases.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but the address and errors.")] = False,
    root_path: Annotated[
        str,
        typer.Option(
            "--root-path",
            help="The path a reverse proxy serves shiprail under (e.g. /shiprail), which it strips: "
            "the status pages link and redirect under it.",
        ),
    ] = "",
    shutdown_grace: Annotated[
        str,
        typer.Option(
            "--shutdown-grace",
            help="On SIGTERM or Ctrl-C, how long the requests under way may take to finish (10s, 1m) before "
            "they are cut off with 503; set it below the supervisor's kill timeout.",
        ),
    ] = format_duration(defaults.SERVE_SHUTDOWN_GRACE_SECONDS),
    db: DbOpt = None,
) -> None:
    """Serve rollout configs to SDKs and take pushed outcomes and signals; run the controller inside."""
    from shiprail.controller import Controller
    from shiprail.controller.health import ControllerHealth
    from shiprail.notifiers.notifier import Notifier
    from shiprail.serve import create_app
    from shiprail.serve.server import Server, listen, url

    if not 0 <= port <= 65535:
        raise BadInput(f"--port must be between 0 and 65535, got {port}")
    root_path = root_path.rstrip("/")
    if root_path and not ROOT_PATH.fullmatch(root_path):
        raise BadInput(
            f"--root-path must be a URL path starting with '/' (e.g. /shiprail), of letters, digits "
            f"and '/', '-', '_', '.', '~', got {root_path!r}"
        )
    grace_s = duration_flag("--shutdown-grace", shutdown_grace)
    project = open_project()
    # A database restarting as serve starts is waited for, as its controller rides out an outage.
    svc = releases(db, project, create="any", wait_s=defaults.CONTROLLER_POLL_SECONDS)
    # Seen by `migrate --to` while it runs (with or without its controller): it writes to the store.
    svc.store.name_sessions()
    flagged = {name: s for name in project.known_services() if (s := sdk_service(project, name)) is not None}
    run_controller = run_notifier = None
    health: ControllerHealth | None = None
    server: Server | None = None
    migrated: list[SchemaChanged] = []
    if not no_controller:
        ctl = Controller(svc, on_event=None if quiet else _print_event)
        # As `shiprail controller --metrics-port`: serve's /healthz turns 503 on a stuck loop, /metrics shows it.
        health = ctl.report_health(project.known_services())

        def run_controller(stop: threading.Event) -> None:
            try:
                ctl.run(stop)
            except SchemaChanged as exc:
                # A newer shiprail migrated the store: all of serve stops, not the controller alone (its
                # API would go on writing pushed outcomes and signals to a schema it does not know).
                migrated.append(exc)
                if server is not None:
                    server.should_exit = True
            finally:
                ctl.close()

        # Notifications (issue #6): the communication plans' deliveries, next to the controller.
        run_notifier = Notifier(svc.store, svc.clock, project.policy.channels).run

    warned: dict[str, str] = {}
    app = create_app(
        svc.store,
        svc.clock,
        flagged,
        lookup=lambda name: later_sdk_service(project, name, warned),
        controller=run_controller,
        notifier=run_notifier,
        health=health,
        # As the controller's pass (or the watch below) takes shiprail.yaml again: someone who joins counts.
        people=lambda: svc.policy.people,
        releases=svc,
        status_token=os.environ.get(defaults.STATUS_TOKEN_ENV) or None,
    )
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise BadInput(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); pick another address or port"
        ) from None
    bound = sock.getsockname()[1]
    console.print(f"shiprail serve: {url(host, bound)} (controller {'off' if no_controller else 'on'})")
    if not quiet:
        status_at = f"{url(host, bound)}/releases"
        if os.environ.get(defaults.STATUS_TOKEN_ENV):
            console.print(f"  status pages: {status_at} (the token in {defaults.STATUS_TOKEN_ENV} opens them)")
        else:
            console.print(f"  status pages: off; set {defaults.STATUS_TOKEN_ENV} to open {status_at} to readers")
    for s in flagged.values():
        if s.key is None and not quiet:
            console.print(f"  {s.name}: no SDK key yet — set {s.key_env}; its SDKs are refused until then")
    logging.getLogger("uvicorn.access").disabled = True
    server = Server(app, root_path, shutdown_grace_s=grace_s, stop_waiting=svc.store.stop_lock_waits)
    done = threading.Event()
    if no_controller:
        # Without the controller's passes nothing else would notice a newer shiprail migrating the
        # store: look every few seconds, and stop as serve with its controller does.
        def watch_schema() -> None:
            while not done.wait(defaults.SCHEMA_WATCH_SECONDS):
                # No controller's pass takes a changed shiprail.yaml here: its people guard the API's signals.
                svc.reload_policy(log, "its people count from now")
                try:
                    svc.store.check_schema()
                except SchemaChanged as exc:
                    migrated.append(exc)
                    server.should_exit = True
                    return
                except Exception:  # the database away: the API answers 503 meanwhile; look again later
                    continue

        threading.Thread(target=watch_schema, name="shiprail-schema-watch", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        done.set()
        if server.requests.any_cut_off:
            # The thread of a request cut off may still wait on the store (for a lock held elsewhere),
            # and the interpreter's exit waits for it: end that wait (its write rolls back; it was
            # answered 503 and is sent again).
            svc.store.cancel_statements()
        # Shut down: the requests under way have ended, and the hub's last contacts, the
        # controller's leases and the notifier's sends were stored. Close the database connections
        # now, then keep the interpreter's exit from collecting the whole heap again and again as it
        # tears the modules down: that took 0.5 s of CPU on an idle machine and several seconds on a
        # busy one, while a supervisor or a rolling restart waited for the process to go.
        svc.store.close()
        gc.freeze()
    if migrated:
        raise migrated[0]  # exit 1, its one sentence on stderr
    if server.force_exit:
        raise typer.Exit(defaults.SERVE_FORCED_EXIT_CODE)  # a second Ctrl-C: its one line is in the log
