"""``shiprail release retro | export | notes | verify-package``: what a release leaves behind."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Annotated

import typer

from shiprail import defaults
from shiprail import retro as retros
from shiprail.cli.audit import read_export
from shiprail.cli.context import actor, open_store, releases
from shiprail.cli.output import ActorOpt, DbOpt, JsonOpt, console, emit_json
from shiprail.domain import rules
from shiprail.errors import BadInput, ShiprailError
from shiprail.export.notes import render_notes
from shiprail.export.package import EXPORTER, write_package
from shiprail.export.record import load_record
from shiprail.export.verify import verify_package as check_package
from shiprail.store import audit

IdArg = Annotated[str, typer.Argument(help="Release id (see `shiprail release list`).", show_default=False)]


def _read_body(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"--file: {path} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"--file: {path} is a directory; give a Markdown file") from None
    except UnicodeDecodeError:
        raise BadInput(f"--file: {path} is not UTF-8 text") from None


def _edit(text: str, release_id: str) -> str:
    """Open ``text`` in $VISUAL / $EDITOR on a temporary file; what the editor left there."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise BadInput("--edit needs an editor: set EDITOR (or VISUAL), or store a file with --file FILE")
    fd, name = tempfile.mkstemp(prefix=f"retro-{release_id}-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except OSError as exc:
            raise BadInput(f"the editor {editor!r} (EDITOR) cannot be started: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise ShiprailError(f"the editor {editor!r} exited with {done.returncode}; nothing was stored")
        return _read_body(path)
    finally:
        path.unlink(missing_ok=True)


def retro(
    release_id: IdArg,
    edit: Annotated[bool, typer.Option("--edit", help="Edit it in $EDITOR, then store it (unless unchanged).")] = False,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Store this Markdown file as the retrospective.", show_default=False),
    ] = None,
    who: ActorOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a release's retrospective (written when it ended), or edit it with --edit / --file."""
    if edit and file is not None:
        raise BadInput("give --edit or --file, not both")
    svc = releases(db)
    if not edit and file is None:
        with svc.store.transaction() as s:
            row = retros.ensure(s, release_id, svc.clock.now())
            data = retros.retro_json(row)
        if as_json:
            emit_json(data)
        else:
            typer.echo(str(data["body"]), nl=False)
        return
    name = actor(who)
    rules.require_person(name, svc.policy.people)
    if file is not None:
        body = _read_body(file)
    else:
        with svc.store.transaction() as s:
            current = retros.ensure(s, release_id, svc.clock.now()).body
        body = _edit(current, release_id)
    with svc.store.transaction() as s:
        row, changed = retros.save(s, release_id, body, name, svc.clock.now())
        data = retros.retro_json(row)
    if as_json:
        emit_json({k: v for k, v in data.items() if k != "body"} | {"changed": changed})
    elif changed:
        console.print(f"stored the retrospective of {release_id} (sha256 {str(data['sha256'])[:16]}…)")
    else:
        console.print(f"the retrospective of {release_id} is unchanged; nothing stored")


def export(
    release_id: IdArg,
    out: Annotated[
        Path, typer.Option("--out", help="A new (or empty) directory to write the package into.", show_default=False)
    ],
    db: DbOpt = None,
    who: ActorOpt = None,
    broken_chain: Annotated[
        bool,
        typer.Option(
            "--broken-chain",
            help="Export even from a broken audit chain (to investigate); the package says so and never verifies.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the release package: plan, rollout, gate evidence, Verify, rollbacks, retrospective, audit proof.

    Markdown for people (start at README.md), JSON for machines, and MANIFEST.sha256 (signed when
    SHIPRAIL_AUDIT_KEY is set); the audit chain records the export (package.exported, with the
    manifest's sha256, by --as when given). Check it with `shiprail release verify-package DIR`.
    A broken audit chain refuses the export (exit 1), unless --broken-chain.
    """
    svc = releases(db)
    if who is not None:
        # Recorded as the package.exported event's actor: a person of shiprail.yaml, as for every
        # other event people append (not a name nobody has, nor one of shiprail's own actors).
        rules.require_person(who, svc.policy.people)
    key = os.environ.get(defaults.AUDIT_KEY_ENV) or None
    written = write_package(
        svc.store, svc.clock.now(), release_id, out, key, actor=who or EXPORTER, broken_chain=broken_chain
    )
    broken = written.chain_broken
    if as_json:
        emit_json(
            {
                "ok": True,
                "directory": str(written.directory),
                "release_id": written.release_id,
                "files": written.files,
                "events": written.events,
                "signed": written.signed,
                "chain_broken_at": broken.seq if broken else None,
            }
        )
        return
    console.print(
        # As verify-package counts them: the files the manifest lists, then the manifest itself.
        f"wrote the package of {written.release_id} to {written.directory}: {len(written.files) - 1} files and "
        f"their manifest, "
        f"{written.events} audit events{', signed' if written.signed else ''}; start at "
        f"{written.directory / 'README.md'}"
        + (f"; the audit chain is broken at seq {broken.seq}: the package is marked so" if broken else "")
    )


def notes(release_id: IdArg, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Print release notes for a GitHub or GitLab release: summary, changes, risk, rollout as run, outcome."""
    svc = releases(db)
    with svc.store.snapshot() as s:
        body = render_notes(load_record(s, release_id))
    if as_json:
        emit_json({"release_id": release_id, "body": body})
    else:
        typer.echo(body, nl=False)


def _require_whole_chain(path: Path, rows: list[audit.EventRow]) -> None:
    """``BadInput`` when ``rows`` are one release's events (``audit export --release``), not the chain.

    Checked against them, the package would "fail" with a chain broken at seq 1 and a head
    rewritten: an accusation of tampering for what is the wrong file.
    """
    releases = {r.release_id for r in rows}
    whole = rows[0].seq == 1 and all(b.seq == a.seq + 1 for a, b in pairwise(rows))
    if len(releases) == 1 and not whole:
        raise BadInput(
            f"--chain: {path} holds only the events of release {rows[0].release_id} (seq {rows[0].seq} to "
            f"{rows[-1].seq}), as `shiprail audit export --release` writes them; a package is checked against "
            "the whole chain: write it with `shiprail audit export --out FILE`"
        )


def verify_package(
    directory: Annotated[Path, typer.Argument(help="A package written by `shiprail release export`.")],
    against_store: Annotated[
        bool,
        typer.Option(
            "--against-store", help="Also check the events against the store's audit chain (--db or the project's)."
        ),
    ] = False,
    chain: Annotated[
        Path | None,
        typer.Option(
            "--chain", help="Also check the events against a full `shiprail audit export` file.", show_default=False
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a release package: manifest (and its signature), the files agree, audit event hashes and links.

    Exit 0 when it holds, 1 naming what does not. A signed package needs SHIPRAIL_AUDIT_KEY.
    """
    if against_store and chain is not None:
        raise BadInput("give --against-store or --chain, not both")
    key = os.environ.get(defaults.AUDIT_KEY_ENV) or None
    if against_store:
        store = open_store(db, create="never")
        with store.snapshot() as s:
            head = audit.head(s)
            rows = list(audit.rows(s))
        report = check_package(directory, key=key, chain=rows, head=head)
    elif chain is not None:
        if chain.is_dir():
            raise BadInput(f"--chain: {chain} is a directory; give the file `shiprail audit export --out FILE` wrote")
        if not chain.is_file():
            raise BadInput(f"--chain: {chain} does not exist; write it with `shiprail audit export --out FILE`")
        rows = read_export(chain)
        _require_whole_chain(chain, rows)
        report = check_package(directory, key=key, chain=rows)
    else:
        report = check_package(directory, key=key)
    if as_json:
        emit_json(report.to_json())
        if not report.ok:
            raise typer.Exit(1)
        return
    if not report.ok:
        # The first problem as the error sentence, then the others, so nothing found goes unsaid.
        sys.stderr.write(f"error: the package {directory} does not hold: {report.problems[0]}\n")
        for problem in report.problems[1:]:
            sys.stderr.write(f"  also: {problem}\n")
        raise typer.Exit(1)
    span = f"seq {report.first_seq}..{report.last_seq}" if report.events else "none"
    console.print(
        f"package ok: {report.files} files match the manifest{' and its signature' if report.signed else ''}; "
        f"{report.events} audit events of {report.release_id} ({span}) hash-check and link"
        + ("; they match the audit chain" if report.against_chain else "")
    )
    for note in report.notes:
        console.print(f"  not compared: {note}")
