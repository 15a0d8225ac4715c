"""``shiprail init``: a policy, an example service and plan, and the templates teams copy.

The templates: a release plan, a gallery of rollback contracts, the retrospective guide with an
example filled in, and CI pipelines (``ci/``) that run a release with ``shiprail release start
--wait`` and keep its notes and release package.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from shiprail.errors import BadInput

TEMPLATE_ROOT = "templates/project"


def _files(node: Traversable, prefix: Path) -> list[tuple[Path, Traversable]]:
    out: list[tuple[Path, Traversable]] = []
    for child in node.iterdir():
        if child.is_dir():
            out.extend(_files(child, prefix / child.name))
        elif not child.name.startswith((".", "__")):
            out.append((prefix / child.name, child))
    return sorted(out, key=lambda pair: str(pair[0]))


def write_project(target: Path, force: bool = False) -> list[Path]:
    """Copy the project templates into ``target``; refuse to overwrite unless ``force``."""
    root = resources.files("shiprail").joinpath(TEMPLATE_ROOT)
    files = _files(root, Path())
    # Everything is checked before the first file is written: a project is written whole or not at all.
    if target.exists() and not target.is_dir():
        raise BadInput(f"{target} is a file, not a directory; give a directory for the new project")
    for rel, _ in files:
        for folder in rel.parents:  # ci/ of ci/github.yml, up to the project itself
            place = target / folder
            if place.exists() and not place.is_dir():
                raise BadInput(f"{place} is a file where shiprail init writes a directory; move it aside")
        if (target / rel).is_dir():
            raise BadInput(f"{target / rel} is a directory where shiprail init writes a file; move it aside")
    if not force:
        clash = [rel for rel, _ in files if (target / rel).exists()]
        if clash:
            raise BadInput(f"{target / clash[0]} already exists; pass --force to overwrite the example files")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadInput(
            f"{target} cannot be created (a part of its path is a file); give a directory for the new project"
        ) from None
    except OSError as exc:
        raise BadInput(
            f"{target} cannot be created ({exc.strerror or exc}); "
            "give a directory shiprail can write for the new project"
        ) from None
    written = []
    for rel, src in files:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
        written.append(dest)
    return written
