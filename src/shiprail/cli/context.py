"""What every command needs: the project, the store, the clock, who is acting."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Literal

from shiprail import __version__, defaults
from shiprail.clock import WallClock
from shiprail.durations import MAX_DURATION_SECONDS
from shiprail.errors import BadInput, NotFound, StoreUnreachable
from shiprail.project import PolicyWatch, Project, find_root, open_project
from shiprail.releases import SYSTEM_ACTOR_PREFIX, Releases
from shiprail.store.db import SCHEMA_HEAD, Store, resolve_url

Create = Literal["never", "default", "any"]

log = logging.getLogger(__name__)


def open_store(
    db: str | None,
    start: Path | None = None,
    *,
    create: Create = "default",
    migrate: bool = True,
    quiet: bool = False,
    wait_s: float | None = None,
) -> Store:
    """The store named by ``--db`` / the environment, else the project's SQLite file.

    ``create`` says which SQLite file that does not exist yet may be created: ``never`` for the
    commands that only read (an empty new store would otherwise "verify" as a clean, empty audit
    trail); ``default`` (most commands) only the project's own ``.shiprail/shiprail.db`` of a new
    project, not a file named with ``--db`` or the environment, where a missing one is a typo that
    would otherwise start a second, empty store; ``any`` for the commands that begin a store's
    life (``release create``, ``serve``). ``migrate=False`` leaves the schema as it is (``migrate --to``).
    A store it migrated is noted on stderr, unless ``quiet`` (``shiprail migrate`` says it itself).
    ``wait_s``: a database server that cannot be reached (restarting, failing over) is tried again
    every ``wait_s`` seconds, each try logged, as the running controller rides out an outage
    (``controller``, ``serve``); None: it is an error at once.
    """
    root = find_root(start or Path.cwd())
    url = resolve_url(db, root)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and create != "any":
        path = Path(url.removeprefix("sqlite:///"))
        named = bool(db or os.environ.get(defaults.DATABASE_URL_ENV))
        if (create == "never" or named) and not path.is_file():
            if named:
                hint = (
                    f"check --db / {defaults.DATABASE_URL_ENV} "
                    "(`shiprail release create`, `shiprail serve` and `shiprail migrate` start a new store)"
                )
            elif root is not None:
                hint = "this project has recorded nothing yet (`shiprail release create` starts its store)"
            else:
                hint = f"run inside a shiprail project, or name the store with --db or {defaults.DATABASE_URL_ENV}"
            raise NotFound(f"no shiprail store at {path}; {hint}")
    # A database that holds no shiprail tables is refused alike (PostgreSQL, an empty SQLite file);
    # an in-memory one is new at every opening, never a mistake.
    while True:
        try:
            store = Store(url, migrate=migrate, create=create != "never" or url == "sqlite:///:memory:")
            break
        except StoreUnreachable as exc:
            if wait_s is None:
                raise
            log.warning("cannot reach the store: %s; looking again in %gs", exc.why, wait_s)
            time.sleep(wait_s)
    if store.migrated_from and not quiet:
        # Any command of an upgraded shiprail migrates the store it opens: say so, once, on stderr, so
        # that it is no surprise (the older shiprail's controllers stop on it) and shows in CI logs.
        sys.stderr.write(
            f"note: migrated the database {store.display_url} from schema revision {store.migrated_from[0]} to "
            f"{SCHEMA_HEAD}, this shiprail's newest, as it opened it (shiprail {__version__})\n"
        )
    return store


def releases(
    db: str | None, project: Project | None = None, *, create: Create = "default", wait_s: float | None = None
) -> Releases:
    """The release commands over the project found from the working directory (``wait_s``: see ``open_store``)."""
    project = project or open_project()
    store = open_store(db, project.root, create=create, wait_s=wait_s)
    return Releases(store, WallClock(), project.policy, PolicyWatch(project.root))


def actor(name: str | None, *, person: bool = True) -> str:
    """Who is acting; a clear error when nobody said.

    ``person``: the name must not be one of shiprail's own actors (``shiprail:controller``…). The
    service layer trusts those without a role check, and records and retrospectives take a
    rollback by one for an automatic rollback: typed at ``--as``, anyone not in shiprail.yaml
    could pause, promote or roll back a release, posing as the controller. Only ``signal``, which
    takes any name, passes ``person=False``.
    """
    if not name:
        raise BadInput(f"say who is acting with --as NAME or {defaults.USER_ENV}")
    if person and name.startswith(SYSTEM_ACTOR_PREFIX):
        raise BadInput(
            f"--as {name}: names starting with {SYSTEM_ACTOR_PREFIX!r} are shiprail's own (the controller, the "
            f"notifier); act as a person in shiprail.yaml with --as NAME or {defaults.USER_ENV}"
        )
    return name


def seconds_flag(flag: str, value: float, *, zero: bool = False) -> float:
    """A number of seconds given with ``flag``: finite, above 0 (or 0 with ``zero``), at most 366 days.

    Typer's ``min=`` lets NaN through (every comparison with it is false) and nothing bounds
    ``inf``: both would fail deep inside a running command, after it had changed something.
    """
    low = value >= 0 if zero else value > 0
    if not (math.isfinite(value) and low and value <= MAX_DURATION_SECONDS):
        least = "0 or more" if zero else "above 0"
        raise BadInput(
            f"{flag} takes a number of seconds, {least} and at most 366 days ({MAX_DURATION_SECONDS}), got {value:g}"
        )
    return value
