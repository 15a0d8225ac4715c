"""``shiprail signal``: record a pushed count — a customer complaint, an alert, a counter."""

from __future__ import annotations

from typing import Annotated

import typer

from shiprail import defaults
from shiprail.cli.context import actor, open_store
from shiprail.cli.output import DbOpt, JsonOpt, console, emit_json, float_flag
from shiprail.clock import WallClock
from shiprail.errors import NotFound
from shiprail.project import Project, open_project
from shiprail.providers.push import SignalRecord, check_signal, record_signal


def require_service(project: Project, service: str) -> None:
    """Raise ``NotFound`` naming the known services when ``services/<service>.yaml`` does not exist."""
    known = project.known_services()
    if service in known:
        return
    listed = f"known services: {', '.join(known)}" if known else "there are none yet"
    where = f"{defaults.SERVICES_DIR}/{service}.yaml"
    raise NotFound(f"no service {service!r}: {where} does not exist in {project.root}; {listed}")


def describe(record: SignalRecord) -> str:
    """The one line ``shiprail signal`` prints."""
    who = record.service + (f" {record.version}" if record.version else "")
    where = f"release {record.release_id}" if record.release_id else "no release in progress"
    done = "already recorded (the same idempotency key)" if record.replayed else "recorded"
    return f"{done} {record.name} ×{record.value:.15g} for {who} ({where})"


def signal(
    service: Annotated[str, typer.Argument(help="The service (services/SERVICE.yaml).", show_default=False)],
    name: Annotated[
        str,
        typer.Argument(
            help="What is counted: customer_complaint, alert, or a counter a push metric reads.", show_default=False
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="The version it is about (default: none, e.g. a complaint).", show_default=False
        ),
    ] = None,
    count: Annotated[
        float, typer.Option("--count", help="How many: a finite number above 0.", parser=float_flag, metavar="FLOAT")
    ] = 1.0,
    note: Annotated[str, typer.Option("--note", help="Free text kept with the signal (a ticket link).")] = "",
    key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="A key of your own for this signal: sent again (a retry), it records nothing twice.",
            show_default=False,
        ),
    ] = None,
    who: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar="SHIPRAIL_USER",
            help="Who or what sent it: any name (a person, a CI job, an app).",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a pushed count for a service: a complaint, an alert, or a counter for the push provider."""
    project = open_project()
    require_service(project, service)
    by = actor(who, person=False)  # any name may push a signal: a CI job, an app
    # Refuse bad input before a store is opened (or a SQLite file created).
    check_signal(service=service, name=name, value=count, version=version, actor=by, note=note, key=key)
    store = open_store(db, project.root)
    try:
        record = record_signal(
            store, WallClock(), service=service, name=name, value=count, version=version, actor=by, note=note, key=key
        )
    finally:
        store.close()
    if as_json:
        emit_json(record.to_json())
    else:
        console.print(describe(record), markup=False)
