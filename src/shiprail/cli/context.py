"""What every command needs: the project, the store, the clock, who is acting."""

from __future__ import annotations

from pathlib import Path

from shiprail import defaults
from shiprail.clock import WallClock
from shiprail.errors import BadInput
from shiprail.project import Project, find_root, open_project
from shiprail.releases import Releases
from shiprail.store.db import Store, resolve_url


def open_store(db: str | None, start: Path | None = None) -> Store:
    """The store named by ``--db`` / the environment, else the project's SQLite file."""
    root = find_root(start or Path.cwd())
    return Store(resolve_url(db, root))


def releases(db: str | None, project: Project | None = None) -> Releases:
    """The release commands over the project found from the working directory."""
    project = project or open_project()
    return Releases(open_store(db, project.root), WallClock(), project.policy)


def actor(name: str | None) -> str:
    """Who is acting; a clear error when nobody said."""
    if not name:
        raise BadInput(f"say who is acting with --as NAME or {defaults.USER_ENV}")
    return name
