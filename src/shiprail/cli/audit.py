"""``shiprail audit``: verify and export the tamper-evident audit trail."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from shiprail import defaults
from shiprail.cli.context import open_store
from shiprail.cli.output import DbOpt, JsonOpt, console, emit_json
from shiprail.clock import WallClock
from shiprail.errors import AuditChainBroken, BadInput, ShiprailError
from shiprail.store import audit

app = typer.Typer(help="Verify and export the audit trail.", no_args_is_help=True)

CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint", help="A checkpoint file kept outside the database (from `audit export`).", show_default=False
    ),
]


def read_checkpoint(path: Path) -> audit.Checkpoint:
    """Load a checkpoint file, checking its signature when it has one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cp = audit.Checkpoint(int(data["seq"]), str(data["hash"]), str(data["at"]), data.get("signature"))
    except FileNotFoundError:
        raise BadInput(f"--checkpoint: {path} does not exist") from None
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"--checkpoint: {path} is not a shiprail checkpoint (JSON with seq, hash, at)") from None
    key = os.environ.get(defaults.AUDIT_KEY_ENV)
    if cp.signature is None and key:
        # With a key set, checkpoints are expected signed: an unsigned one may have had its
        # signature stripped along with an edit.
        raise AuditChainBroken(
            f"the checkpoint {path} is not signed, but {defaults.AUDIT_KEY_ENV} is set; use a checkpoint "
            "exported with the key",
            cp.seq,
        )
    if cp.signature is not None:
        if not key:
            raise BadInput(f"--checkpoint: {path} is signed; set {defaults.AUDIT_KEY_ENV} to the key to check it")
        if not cp.signature_ok(key):
            raise AuditChainBroken(
                f"the checkpoint {path} has a bad signature: it was altered or signed with another key", cp.seq
            )
    return cp


def read_export(path: Path) -> list[audit.EventRow]:
    """Events from an ``audit export`` JSON-lines file."""
    out: list[audit.EventRow] = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise BadInput(f"--file: {path} does not exist") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(audit.EventRow.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"{path}:{n}: not an audit event line from `shiprail audit export`") from None
    return out


@app.command()
def verify(
    checkpoint: CheckpointOpt = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Verify an exported JSON-lines file instead of the database.", show_default=False),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain; exit 1 naming the first seq altered, missing, inserted or reordered."""
    cp = read_checkpoint(checkpoint) if checkpoint else None
    if file is not None:
        report = audit.verify(read_export(file), checkpoint=cp)
    else:
        store = open_store(db, create=False)
        with store.snapshot() as s:
            head_seq, head_hash = audit.head(s)
            report = audit.verify(audit.rows(s), head_seq=head_seq, head_hash=head_hash, checkpoint=cp)
    if as_json:
        f = report.finding
        emit_json(
            {
                "ok": report.ok,
                "events": report.count,
                "verified_through": report.last_seq,
                "last_hash": report.last_hash,
                "first_bad_seq": f.seq if f else None,
                "problem": f.kind if f else None,
                "detail": f.detail if f else None,
            }
        )
        if f:
            raise typer.Exit(1)
        return
    if report.finding is not None:
        raise AuditChainBroken(
            f"audit chain broken at seq {report.finding.seq}: {report.finding.detail}", report.finding.seq
        )
    console.print(
        f"audit chain ok: {report.last_seq} events, head {report.last_hash[:16]}…"
        + (f", matches checkpoint at seq {cp.seq}" if cp else "")
    )


def _check_writable(flag: str, path: Path) -> None:
    """Refuse (bad input) a path a file cannot be written at: a directory, or in a missing one."""
    if path.is_dir():
        raise BadInput(f"{flag} {path} is a directory; give a file path")
    parent = path.parent
    if not parent.is_dir():
        raise BadInput(f"{flag} {path}: the directory {parent} does not exist; create it or give another path")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"{flag} {path}: the directory {parent} is not writable; give another path")


def _write(flag: str, path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ShiprailError(f"{flag} {path}: cannot be written ({exc.strerror or exc})") from None


@app.command()
def export(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write JSON lines here (default: stdout).", show_default=False)
    ] = None,
    release: Annotated[str | None, typer.Option(help="Only this release's events.")] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Also write the chain head here, to keep "
            "outside the database (signed when SHIPRAIL_AUDIT_KEY is set).",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write the audit events as JSON lines, and optionally a checkpoint of the chain head."""
    if release is not None and checkpoint is not None:
        # A checkpoint anchors the whole chain: one release's events can never verify against it.
        raise BadInput(
            "--checkpoint records the whole chain's head, which one release's events cannot be checked "
            "against; drop --release for an archive with its checkpoint, or use `shiprail release export` "
            "for one release's proof"
        )
    # Both places are checked before either is written: a bad --checkpoint leaves no archive behind.
    for flag, path in (("--out", out), ("--checkpoint", checkpoint)):
        if path is not None:
            _check_writable(flag, path)
    store = open_store(db, create=False)
    with store.snapshot() as s:
        lines = [json.dumps(row.to_json(), sort_keys=True, ensure_ascii=False) for row in audit.rows(s, release)]
        head_seq, head_hash = audit.head(s)
    text = "".join(line + "\n" for line in lines)
    if out is None:
        typer.echo(text, nl=False)
    else:
        _write("--out", out, text)
    if checkpoint is not None:
        cp = audit.Checkpoint(head_seq, head_hash, WallClock().now().isoformat())
        key = os.environ.get(defaults.AUDIT_KEY_ENV)
        if key:
            cp = cp.sign(key)
        _write("--checkpoint", checkpoint, json.dumps(cp.to_json(), indent=2) + "\n")
    if out is not None:
        console.print(
            f"wrote {len(lines)} events to {out}" + (f" and the checkpoint to {checkpoint}" if checkpoint else "")
        )
