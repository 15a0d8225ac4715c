"""``shiprail audit``: verify and export the tamper-evident audit trail."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TextIO

import typer
from sqlalchemy.orm import Session

from shiprail import defaults
from shiprail.cli.context import open_store
from shiprail.cli.group import ShiprailGroup
from shiprail.cli.output import DbOpt, JsonOpt, console, duration_flag, emit_json
from shiprail.clock import WallClock
from shiprail.durations import format_duration
from shiprail.errors import AuditChainBroken, BadInput, NotFound, ShiprailError, not_utf8, why_unreadable
from shiprail.project import anchor_log, find_root, open_project
from shiprail.releases import no_such_release
from shiprail.schema.source import display_name
from shiprail.store import anchors, audit
from shiprail.store.models import Release

app = typer.Typer(help="Verify and export the audit trail.", no_args_is_help=True, cls=ShiprailGroup)

CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint", help="A checkpoint file kept outside the database (from `audit export`).", show_default=False
    ),
]


CHECKPOINT_FORM = "use a checkpoint written by `shiprail audit export --checkpoint`"
EXPORT_FORM = "give a file written by `shiprail audit export --out`"


def _not_a_checkpoint(path: Path, why: str) -> BadInput:
    return BadInput(f"--checkpoint: {path} is not a shiprail checkpoint: {why}; {CHECKPOINT_FORM}")


def _read_bytes(
    path: Path, prefix: str, *, missing: str | None = None, read: Callable[[Path], bytes] = Path.read_bytes
) -> bytes:
    """``path``'s bytes (as ``read`` reads them); ``BadInput`` naming it (after ``prefix``, a flag or
    nothing) when it is missing (``missing`` replaces that prefix there) or unreadable."""
    try:
        return read(path)
    except BlockingIOError:
        raise  # a lock kept too long (``anchors.read_shared``): the caller says what that means
    except FileNotFoundError:
        raise BadInput(f"{prefix if missing is None else missing}{path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"{prefix}{path} {why_unreadable(exc)}") from None


def _read_text(path: Path, prefix: str, what: str, advice: str, *, missing: str | None = None) -> str:
    """``path``'s UTF-8 text; ``BadInput`` naming it (after ``prefix``, a flag or nothing) when it is missing
    (``missing`` replaces that prefix there), unreadable or not text."""
    data = _read_bytes(path, prefix, missing=missing)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{prefix}{path} is not {what}: it {not_utf8(exc)}; {advice}") from None


def parse_checkpoint(path: Path, text: str) -> audit.Checkpoint:
    """The checkpoint in ``text`` (``path`` names it), every field as ``audit export`` writes it; else ``BadInput``."""
    try:
        data = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise _not_a_checkpoint(path, f"not JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise _not_a_checkpoint(path, "nested too deeply to be JSON of seq, hash and at") from None
    try:
        return anchors.checkpoint_from_json(data)
    except ValueError as exc:
        raise _not_a_checkpoint(path, str(exc)) from None


def read_checkpoint(path: Path) -> audit.Checkpoint:
    """Load a checkpoint file, checking its signature when it has one."""
    text = _read_text(path, "--checkpoint: ", "a shiprail checkpoint", CHECKPOINT_FORM)
    cp = parse_checkpoint(path, text)
    anchors.check_signature(
        cp,
        os.environ.get(defaults.AUDIT_KEY_ENV),
        name=f"the checkpoint {path}",
        unsigned_advice="use a checkpoint exported with the key",
        flag="--checkpoint",
    )
    return cp


def iter_export(path: Path) -> Iterator[audit.EventRow]:
    """Events from an ``audit export`` JSON-lines file, one line at a time; ``BadInput`` naming it
    when it holds none or is not one.

    Read as it is verified, so a long chain is never held whole (a year of releases is a file of
    hundreds of megabytes). ``release verify-package --chain`` reads its file here too (having
    checked that it exists), so only the message of a missing file names a flag (``--file``);
    the others name the file.
    """
    count = 0
    try:
        with path.open("rb") as handle:
            offset = 0
            for n, raw in enumerate(handle, 1):  # a binary file's lines end after each b"\n"
                try:
                    line = raw.decode("utf-8")  # a character's UTF-8 bytes never hold b"\n"
                except UnicodeDecodeError as exc:
                    where = f"byte 0x{raw[exc.start]:02x} at offset {offset + exc.start}"
                    raise BadInput(
                        f"{path} is not an audit export: it is not UTF-8 text ({where}); {EXPORT_FORM}"
                    ) from None
                offset += len(raw)
                if n == 1:
                    line = line.removeprefix("\ufeff")
                if not line.strip():
                    continue
                try:
                    row = audit.EventRow.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                    raise BadInput(f"{path}:{n}: not an audit event line from `shiprail audit export`") from None
                count += 1
                yield row
    except FileNotFoundError:
        raise BadInput(f"--file: {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"{path} {why_unreadable(exc)}") from None
    if not count:
        # An empty chain verifies trivially: it proves nothing, and is most likely the wrong file.
        raise BadInput(f"{path} holds no audit events; {EXPORT_FORM}")


def read_export(path: Path) -> list[audit.EventRow]:
    """Every event of an ``audit export`` file at once (``iter_export``'s, for a caller that needs them all)."""
    return list(iter_export(path))


class _Shape:
    """What ``audit verify --file`` saw of an export as it streamed by: one release's only, and whole or not."""

    def __init__(self) -> None:
        self.releases: set[str | None] = set()
        self.first: int | None = None
        self.last: int | None = None
        self.whole = True

    def watch(self, rows: Iterator[audit.EventRow]) -> Iterator[audit.EventRow]:
        for row in rows:
            if len(self.releases) < 2:
                self.releases.add(row.release_id)
            expected = 1 if self.last is None else self.last + 1
            self.whole = self.whole and row.seq == expected
            self.first = row.seq if self.first is None else self.first
            self.last = row.seq
            yield row

    @property
    def one_release(self) -> str | None:
        """The release every event belongs to, when they all belong to one."""
        return next(iter(self.releases)) if len(self.releases) == 1 else None


@app.command()
def verify(
    checkpoint: CheckpointOpt = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Verify an exported JSON-lines file instead of the database.", show_default=False),
    ] = None,
    anchor_log: Annotated[
        Path | None,
        typer.Option(
            "--anchors",
            help="Also check against every anchor of this anchor log (from `audit anchor` or the controller).",
            show_default=False,
        ),
    ] = None,
    max_anchor_age: Annotated[
        str | None,
        typer.Option(
            "--max-anchor-age",
            help="With --anchors: fail when the newest anchor is older than this (30m, 2h) and events came after it.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain; exit 1 naming the first seq altered, missing, inserted or reordered."""
    max_age = _max_anchor_age(max_anchor_age, anchor_log)
    cp = read_checkpoint(checkpoint) if checkpoint else None
    logged = read_anchor_log(anchor_log) if anchor_log else []
    checks = anchors.as_checks(logged, str(anchor_log))
    past_end: list[anchors.Anchor] = []
    if file is not None:
        seen = _Shape()

        def up_to_end() -> Iterator[tuple[str, audit.Checkpoint]]:
            # An export ends where it was taken: anchors taken after it (an archive checked against
            # the log as it is now) record seqs it cannot hold, which is no sign of tampering.
            for anchor, check in zip(logged, checks, strict=True):
                if seen.last is not None and anchor.checkpoint.seq > seen.last:
                    past_end.append(anchor)
                else:
                    yield check

        report = audit.verify(seen.watch(iter_export(file)), checkpoint=cp, anchors=up_to_end())
        if not report.ok and seen.one_release is not None and not seen.whole:
            # Verified as a chain, one release's events "miss" every other event: an accusation of
            # tampering for what is the wrong file.
            raise BadInput(
                f"--file: {file} holds only the events of release {seen.one_release} (seq {seen.first} to "
                f"{seen.last}), as `shiprail audit export --release` writes them, not the whole chain; "
                f"{EXPORT_FORM} without --release"
            )
    else:
        store = open_store(db, create="never")
        with store.snapshot() as s:
            head_seq, head_hash = audit.head(s)
            report = audit.verify(audit.rows(s), head_seq=head_seq, head_hash=head_hash, checkpoint=cp, anchors=checks)
    if report.ok and logged and max_age is not None:
        _check_anchor_age(logged[-1], report.last_seq, max_age, str(anchor_log))
    if as_json:
        f = report.finding
        out = {
            "ok": report.ok,
            "events": report.count,
            "verified_through": report.last_seq,
            "last_hash": report.last_hash,
            "first_bad_seq": f.seq if f else None,
            "problem": f.kind if f else None,
            "detail": f.detail if f else None,
        }
        if cp is not None:
            # What the text says as "matches checkpoint at seq N": which checkpoint this chain held to.
            out["checkpoint"] = {"seq": cp.seq, "hash": cp.hash, "at": cp.at, "signed": cp.signature is not None}
        if anchor_log is not None:
            newest = logged[-1]
            out["anchors"] = len(logged)
            out["anchors_past_end"] = len(past_end)
            out["newest_anchor"] = {"line": newest.line, "seq": newest.checkpoint.seq, "at": newest.checkpoint.at}
        emit_json(out)
        if f:
            raise typer.Exit(1)
        return
    if report.finding is not None:
        raise AuditChainBroken(
            f"audit chain broken at seq {report.finding.seq}: {report.finding.detail}", report.finding.seq
        )
    matched = [f"matches checkpoint at seq {cp.seq}"] if cp else []
    checked = logged[: len(logged) - len(past_end)]
    if checked:
        count = f"{len(checked)} anchor{'s' if len(checked) != 1 else ''}"
        upto = " up to its end" if past_end else ""
        matched.append(f"matches the {count} of {anchor_log}{upto} (the newest at seq {checked[-1].checkpoint.seq})")
    unchecked = ""
    if past_end:
        n = len(past_end)
        which = (
            f"{n} later anchor{'s' if n != 1 else ''}"
            if checked
            else f"the {n} anchor{'s' if n != 1 else ''} of {anchor_log}"
        )
        unchecked = (
            f"{'; ' if checked else ', '}{which} record{'s a seq' if n == 1 else ' seqs'} past seq "
            f"{report.last_seq}, where the export ends, and {'was' if n == 1 else 'were'} not checked: it was "
            f"exported before {'it' if n == 1 else 'them'}, or cut short (the checkpoint exported with it tells)"
        )
    console.print(
        f"audit chain ok: {report.last_seq} events, head {report.last_hash[:16]}…"
        + "".join(f", {m}" for m in matched)
        + unchecked,
        markup=False,
    )


ANCHOR_LOG_FORM = "give an anchor log written by `shiprail audit anchor` or the controller (audit.anchors)"


def read_anchor_log(path: Path) -> list[anchors.Anchor]:
    """The anchors of the log at ``path`` once it holds (``anchors.read_log``); ``BadInput`` when it is
    missing, unreadable or holds none, naming ``--anchors``.

    Read under the log's shared lock (``anchors.read_shared``): a controller or cron job appending
    at that moment would otherwise show a last line half written, reported as a log cut short. A
    lock kept longer than a writer waits for it is an error (exit 1: nothing was verified), not bad
    input.
    """
    try:
        data = _read_bytes(path, "--anchors: ", read=anchors.read_shared)
    except BlockingIOError:
        wait = defaults.ANCHOR_LOCK_WAIT_SECONDS
        raise ShiprailError(
            f"--anchors: {path} is locked by another process (for more than {wait:g} s), so nothing was verified; "
            f"try again, and if it stays locked find the process that holds it (`fuser {path}`)"
        ) from None
    found = anchors.read_log(data, str(path), key=os.environ.get(defaults.AUDIT_KEY_ENV) or None, flag="--anchors")
    if not found:
        # Like an empty export: it proves nothing, and is most likely the wrong file.
        raise BadInput(f"--anchors: {path} holds no anchors; {ANCHOR_LOG_FORM}")
    return found


def _max_anchor_age(text: str | None, anchor_log: Path | None) -> int | None:
    """``--max-anchor-age`` in seconds; ``BadInput`` when it is no duration or comes without ``--anchors``."""
    if text is None:
        return None
    if anchor_log is None:
        raise BadInput("--max-anchor-age needs --anchors: give the anchor log whose newest anchor it limits")
    seconds = duration_flag("--max-anchor-age", text)
    if seconds <= 0:
        raise BadInput(f"--max-anchor-age must be longer than 0s, got {text!r}")
    return seconds


def _check_anchor_age(newest: anchors.Anchor, last_seq: int, max_age: int, log: str) -> None:
    """Fail when ``newest`` is older than ``max_age`` by the clock and the chain grew past it: anchoring stopped."""
    now = WallClock().now()
    age = now - newest.time()
    cp = newest.checkpoint
    if abs(age.total_seconds()) <= max_age or last_seq <= cp.seq:
        return
    after = last_seq - cp.seq
    if age.total_seconds() < 0:
        # Dated ahead of the clock (a clock set ahead where it was taken, a forged line): its age
        # would stay "fine" however long anchoring stopped.
        ahead = format_duration(-age.total_seconds())
        raise ShiprailError(
            f"the newest anchor of {log} (line {newest.line}, seq {cp.seq}) is dated {ahead} ahead of this host's "
            f"clock, more than --max-anchor-age {format_duration(max_age)}, and {after} "
            f"event{'s' if after != 1 else ''} came after it (seq {cp.seq + 1} to {last_seq}): a clock is wrong, "
            "or the line was not written by shiprail; its age cannot tell whether anchoring has stopped"
        )
    taken = format_duration(age.total_seconds())
    raise ShiprailError(
        f"the newest anchor of {log} (line {newest.line}, seq {cp.seq}) was taken {taken} ago, more than "
        f"--max-anchor-age {format_duration(max_age)}, and {after} event{'s' if after != 1 else ''} "
        f"came after it (seq {cp.seq + 1} to {last_seq}): anchoring has stopped; see why in the controller's log, "
        "or in the output of the job that runs `shiprail audit anchor`"
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


def _check_release(session: Session, release_id: str) -> None:
    """Refuse (bad input) a ``--release`` the store does not hold, before anything is written."""
    if session.get(Release, release_id) is None:
        raise NotFound(f"--release: {no_such_release(session, release_id)}")


class _Staged:
    """Files written beside their places and renamed there only once every one is whole.

    A full disk then leaves no truncated archive that looks like an export, and an archive already
    at a path is kept as it was instead of cut short. Written line by line: a chain of a million
    events is gigabytes, never held in memory at once.
    """

    def __init__(self) -> None:
        self.files: list[tuple[Path, Path]] = []

    @contextmanager
    def open(self, flag: str, path: Path) -> Iterator[TextIO]:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        self.files.append((path, tmp))
        try:
            with tmp.open("w", encoding="utf-8") as file:
                yield file
        except OSError as exc:
            raise ShiprailError(
                f"{flag} {path}: cannot be written ({exc.strerror or exc}); nothing was written"
            ) from None

    def commit(self) -> None:
        for path, tmp in self.files:
            os.replace(tmp, path)

    def discard(self) -> None:
        for _, tmp in self.files:
            tmp.unlink(missing_ok=True)


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
    store = open_store(db, create="never")
    staged = _Staged()
    count = 0
    try:
        with store.snapshot() as s:
            if release is not None:
                _check_release(s, release)
            head_seq, head_hash = audit.head(s)
            with contextlib.ExitStack() as stack:
                write = (
                    (lambda line: typer.echo(line, nl=False))
                    if out is None
                    else stack.enter_context(staged.open("--out", out)).write
                )
                for row in audit.rows(s, release):
                    write(json.dumps(row.to_json(), sort_keys=True, ensure_ascii=False) + "\n")
                    count += 1
        if checkpoint is not None:
            cp = audit.Checkpoint(head_seq, head_hash, WallClock().now().isoformat())
            key = os.environ.get(defaults.AUDIT_KEY_ENV)
            if key:
                cp = cp.sign(key)
            with staged.open("--checkpoint", checkpoint) as file:
                file.write(json.dumps(cp.to_json(), indent=2) + "\n")
        staged.commit()
    finally:
        staged.discard()
    if checkpoint is not None and not os.environ.get(defaults.AUDIT_KEY_ENV):
        # As `audit anchor` warns: an unsigned checkpoint is a documented mode, but only a signed
        # one stands against whoever can also write where it is kept.
        sys.stderr.write(UNSIGNED_CHECKPOINT.format(env=defaults.AUDIT_KEY_ENV, file=checkpoint))
    if out is not None:
        console.print(f"wrote {count} events to {out}" + (f" and the checkpoint to {checkpoint}" if checkpoint else ""))


UNSIGNED_CHECKPOINT = (
    "warning: {env} is not set, so this checkpoint is not signed: anyone who can write {file} can "
    "forge one; set {env} to sign it, and keep the checkpoint where whoever can write the database cannot\n"
)
UNSIGNED_WARNING = (
    "warning: {env} is not set, so this anchor is not signed: anyone who can write {log} can forge "
    "anchors; set {env} (readable only by whoever takes anchors, never by whoever can write the database)\n"
)


def anchor_log_path(to: Path | None) -> tuple[Path, str, str]:
    """Where ``audit anchor`` writes (``--to``, else the project's ``audit.anchors``), how messages name
    it, and the flag or key it came from; ``BadInput`` when it cannot be a file."""
    if to is not None:
        path, shown_as, source = to, str(to), "--to"
    else:
        root = find_root(Path.cwd())
        log = anchor_log(root, open_project(root).policy) if root is not None else None
        if root is None or log is None:
            where = " outside a project" if root is None else f": {defaults.POLICY_FILE} sets no audit.anchors"
            raise BadInput(
                f"--to is required{where}; give the anchor log to append to (`shiprail audit anchor --to FILE`), "
                f"or set audit.anchors in {defaults.POLICY_FILE}"
            )
        path, shown_as, source = log, display_name(log), f"audit.anchors in {defaults.POLICY_FILE}"
    if path.is_dir():
        raise BadInput(f"{source}: {shown_as} is a directory; give the anchor log's file path")
    if not path.parent.is_dir():
        raise BadInput(
            f"{source}: {shown_as}: the directory {display_name(path.parent)} does not exist; "
            "create it or give another path"
        )
    return path, shown_as, source


@app.command()
def anchor(
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="The anchor log to append the checkpoint to (default: audit.anchors in shiprail.yaml).",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Append a signed checkpoint of the chain head to an anchor log kept outside the database."""
    path, shown_as, source = anchor_log_path(to)
    store = open_store(db, create="never")
    key = os.environ.get(defaults.AUDIT_KEY_ENV) or None
    taken = anchors.take(store, path, now=WallClock().now(), key=key, shown_as=shown_as, flag=source)
    cp = taken.checkpoint
    if taken.written and cp.signature is None:
        sys.stderr.write(UNSIGNED_WARNING.format(env=defaults.AUDIT_KEY_ENV, log=shown_as))
    if as_json:
        emit_json({"written": taken.written, "log": shown_as, "line": taken.line, **cp.to_json()})
        return
    if taken.written:
        signed = "signed" if cp.signature else "unsigned"
        console.print(
            f"anchored seq {cp.seq} (hash {cp.hash[:16]}…, {signed}) to {shown_as}, line {taken.line}", markup=False
        )
    else:
        console.print(
            f"nothing written: the chain head (seq {cp.seq}) is already anchored on line {taken.line} of {shown_as}",
            markup=False,
        )
