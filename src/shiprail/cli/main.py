"""The ``shiprail`` entry point: commands, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError, OperationalError

# Typer 0.26 and later vendor their own Click: their usage errors are of these classes, not of a
# `click` installed beside it. Earlier ones (pyproject allows 0.16 on) use the `click` package.
try:
    from typer._click.exceptions import Abort, ClickException
except ImportError:  # typer < 0.26
    from click.exceptions import Abort, ClickException  # type: ignore[assignment]

from shiprail import __version__
from shiprail.cli import audit, checks, plan, release, report
from shiprail.cli import signal as signal_cmd
from shiprail.cli.context import open_store
from shiprail.cli.controller import controller, controllers
from shiprail.cli.group import ShiprailGroup
from shiprail.cli.init import write_project
from shiprail.cli.judge import judge
from shiprail.cli.output import DbOpt, JsonOpt, console, emit_json, report_error
from shiprail.cli.serve import serve
from shiprail.clock import WallClock
from shiprail.errors import BadInput, ShiprailError, StoreError
from shiprail.store.db import SCHEMA_HEAD, first_line, known_revisions, unknown_revision_text

# PostgreSQL's SQLSTATE for "permission denied" (a table, a schema, a sequence).
_INSUFFICIENT_PRIVILEGE = "42501"

app = typer.Typer(
    name="shiprail",
    help="Releases through explicit, gated phases: no surprise deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=ShiprailGroup,
    # `-h` as kubectl, argo and most tools take it; Click passes the names on to every subcommand.
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(plan.app, name="plan")
release.app.command("check")(checks.check)
release.app.command("retro")(report.retro)
release.app.command("export")(report.export)
release.app.command("notes")(report.notes)
release.app.command("verify-package")(report.verify_package)
app.add_typer(release.app, name="release")
app.add_typer(audit.app, name="audit")
app.command("controller")(controller)
app.command("controllers")(controllers)
app.command(name="signal")(signal_cmd.signal)
app.command("serve")(serve)
app.command("judge")(judge)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the project.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing example files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write shiprail.yaml, an example service and release plan, templates to copy, and CI pipelines."""
    written = write_project(directory, force)
    if as_json:
        emit_json({"ok": True, "written": [str(p) for p in written]})
        return
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"next: shiprail plan validate {directory / 'releases' / 'checkout-2.4.0.yaml'}")


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo project here (default: a throwaway directory).", show_default=False),
    ] = None,
) -> None:
    """Run the main job end to end on embedded defaults, checking every outcome."""
    from shiprail.demo import run_demo

    if directory is not None:
        _demo_dir_is_free(directory)
    raise typer.Exit(run_demo(directory))


def _demo_dir_is_free(directory: Path) -> None:
    """Refuse a ``--dir`` that holds anything: the demo writes its own project and store there.

    Run again in the directory it left (or in a real project), it overwrote shiprail.yaml and the
    plans, added ``shop-1.1.0-2`` beside the kept releases, and failed every step after.
    """
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"--dir {directory} is a file; give a new or empty directory for the demo project")
    if directory.is_dir():
        held = sorted(p.name for p in directory.iterdir())
        if held:
            shown = ", ".join(held[:3]) + (", …" if len(held) > 3 else "")
            raise BadInput(
                f"--dir {directory} already holds files ({shown}); the demo writes its own project and store "
                "there: give a new or empty directory"
            )


@app.command()
def migrate(
    db: DbOpt = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="REVISION",
            help=f"Upgrade or downgrade to this schema revision (0001 to {SCHEMA_HEAD}, or head); "
            "an unknown one is refused, listing the known.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --to: go back even while controllers run on the store.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create or upgrade the store's schema to this shiprail's newest revision, or move it to
    --to REVISION, back or forward (run as the schema's owner)."""
    if to is None:
        if force:
            raise BadInput("--force goes with --to REVISION only (it lets a downgrade run beside live controllers)")
        _migrate_to_head(db, as_json)
        return
    known = known_revisions()
    revision = known[-1] if to == "head" else to
    if revision not in known:
        raise BadInput(unknown_revision_text(to, known))
    store = open_store(db, create="any", migrate=False)
    done = store.migrate_to(revision, WallClock().now(), force=force)
    before = done.before[0] if done.before else None
    if as_json:
        emit_json(
            {
                "ok": True,
                "url": store.display_url,
                "from": done.before,
                "revision": revision,
                "in_flight": [{"id": rid, "status": status} for rid, status in done.in_flight],
            }
        )
        return
    if before == revision:
        console.print(f"the database {store.display_url} is at schema revision {revision} already; nothing changed")
    elif before is None:
        console.print(f"created shiprail's tables in the database {store.display_url} (schema revision {revision})")
    elif not done.back:
        console.print(f"migrated the database {store.display_url} from schema revision {before} to {revision}")
    else:
        console.print(f"migrated the database {store.display_url} back from schema revision {before} to {revision}")
    if done.back:
        # The commands of this shiprail that write migrate an older schema as they open it: one
        # started now (a controller restarted by systemd, a CI job) would undo the downgrade.
        sys.stderr.write(
            f"warning: start only a shiprail whose newest schema revision is {revision} on it: most commands of "
            f"this one ({__version__}, newest {SCHEMA_HEAD}) migrate it up again as they open it\n"
        )
    if done.in_flight:
        shown = ", ".join(f"{rid} ({status})" for rid, status in done.in_flight)
        if revision < CONTROLLER_STATE_REVISION:
            # Below it no table holds a rollout's progress, analyses or leases: nothing to take on.
            sys.stderr.write(
                f"warning: releases in flight lose where their rollout was (schema revision {revision} holds no "
                f"controller state; their status and audit trail stay): {shown}\n"
            )
        else:
            sys.stderr.write(
                f"warning: releases in flight, which the older shiprail's controller takes on where they are: {shown}\n"
            )


# The schema revision that added the controller's state (a rollout's progress, analyses, leases).
CONTROLLER_STATE_REVISION = "0002"


def _migrate_to_head(db: str | None, as_json: bool) -> None:
    """``shiprail migrate`` without ``--to``: create the tables, or upgrade them to the newest revision."""
    store = open_store(db, create="any", quiet=True)
    before = store.migrated_from
    if before is None:
        done = f"the database {store.display_url} is at schema revision {SCHEMA_HEAD}, this shiprail's newest"
    elif not before:
        done = f"created shiprail's tables in the database {store.display_url} (schema revision {SCHEMA_HEAD})"
    else:
        done = f"migrated the database {store.display_url} from schema revision {before[0]} to {SCHEMA_HEAD}"
    if as_json:
        emit_json({"ok": True, "url": store.display_url, "from": before, "revision": SCHEMA_HEAD})
        return
    console.print(done)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def _print_version(given: bool) -> None:
    """``shiprail --version``, as most tools take it, does what ``shiprail version`` does."""
    if given:
        console.print(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """Releases through explicit, gated phases: no surprise deployments."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print one sentence (never a traceback) and set the exit code.

    Typer reports its own usage errors (exit 2) as text; with ``--json`` they are reported here, in
    JSON like every other error, as are shiprail's errors.
    """
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        if not as_json:
            app(args=args, prog_name="shiprail", standalone_mode=True)
            return 0
        # Not standalone: a command line the command cannot run (a missing argument, an unknown
        # option, a value of the wrong type) comes back as Click's exception, not boxed text on stderr.
        code = app(args=args, prog_name="shiprail", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ClickException as exc:
        usage = ShiprailError(usage_sentence(exc))
        usage.exit_code = exc.exit_code
        report_error(usage, True)
        return exc.exit_code
    except Abort:
        aborted = ShiprailError("aborted")
        report_error(aborted, True)
        return aborted.exit_code
    except ShiprailError as exc:
        report_error(exc, as_json)
        return exc.exit_code
    except OperationalError as exc:
        # The database itself failed mid-command (SQLite locked past its busy timeout, a dropped
        # PostgreSQL connection): the operator's to retry, not a bug to show a traceback for.
        broken = StoreError(
            f"the database failed: {first_line(exc)}; try again (what this command recorded before stands)"
        )
        report_error(broken, as_json)
        return broken.exit_code
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        # A PostgreSQL role without a grant shiprail needs (a table a new migration added, say):
        # the operator's to fix, as operations.md says, not a bug to show a traceback for.
        refused = StoreError(
            f"the database refused: {first_line(exc)}; grant the role shiprail connects as the privileges "
            "docs/operations.md lists (what this command recorded before stands)"
        )
        report_error(refused, as_json)
        return refused.exit_code
    except PermissionError as exc:
        # A file or directory shiprail may not read or write: the user's to fix. Exit 1, not 2: it
        # may come in the middle of an operation, after something was done.
        where = exc.filename or "a file"
        failed = ShiprailError(f"{where}: permission denied; give the user running shiprail access to it")
        report_error(failed, as_json)
        return failed.exit_code
    return 0


def usage_sentence(exc: ClickException) -> str:
    """Click's message as one of shiprail's sentences, with where to read the command's usage.

    ``Missing option '--out'.`` becomes ``missing option '--out'; see `shiprail release export --help```.
    """
    message = exc.format_message().strip().rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    return f"{message}; see `{ctx.command_path} --help`" if ctx is not None else message


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
