"""The anchor log: checkpoints of the audit chain's head, appended to a file kept outside the database.

A checkpoint (``audit.Checkpoint``) is the ``(seq, hash)`` of the chain head at some moment; only
one kept where whoever can write the database cannot reach catches a tail cut from the chain, or a
chain recomputed from some row on with the head moved along. The anchor log makes taking them
automatic: ``shiprail audit anchor`` (a cron job) or the controller appends one JSON object per line,
as ``audit export --checkpoint`` writes one plus its link, and ``audit verify --anchors`` checks the
chain against every line.

The lines are chained themselves: each carries its ``index`` (1 for the log's first anchor) and
``prev``, the SHA-256 of the canonical JSON of the anchor before it (``link_digest``; 64 zeros for
the first), both under its signature. A line removed, moved or edited anywhere then breaks the link
of some line after it (``broken_link``), wherever the file is kept; lines cut off the end leave a log
whole as far as it goes, which only ``--max-anchor-age`` can notice. Lines written before anchors
were chained carry no link: they may only come first, and the first chained line after them starts
the chain (its ``index`` counts them and its ``prev`` is the digest of the last of them).

Parsing and checking the log are pure; ``AnchorLog`` is the file, opened for appending under an
exclusive lock so that two writers (two controllers, a controller and a cron job) never append the
same head twice, and ``read_shared`` reads it under a shared one, so that a reader never sees a
line half written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import itertools
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from shiprail import defaults
from shiprail.errors import AuditChainBroken, BadInput, ShiprailError
from shiprail.schema.resolved import canonical_json, sha256_hex
from shiprail.store import audit
from shiprail.store.audit import Checkpoint
from shiprail.store.db import Store

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP})  # flock: the file system has none
_LOCK_POLL_S = 0.05  # how often a writer or reader waiting for the log's lock tries again


def shown(value: object) -> str:
    """A value of a JSON file as the file spells it (``true``, ``"ab"``), cut short when long."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 70 else text[:69] + "…"


def checkpoint_from_json(data: object) -> Checkpoint:
    """The checkpoint ``data`` holds, every field as ``audit export`` writes it; ``ValueError`` saying
    what is wrong otherwise (``seq is 0, not the seq of an event ...``)."""
    if not isinstance(data, Mapping):
        raise ValueError("not a JSON object of seq, hash and at")
    for name in ("seq", "hash", "at"):
        if name not in data:
            raise ValueError(f"it has no {name}")
    seq, digest, at, signature = data["seq"], data["hash"], data["at"], data.get("signature")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"seq is {shown(seq)}, not the seq of an event (a whole number of at least 1)")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ValueError(f"hash is {shown(digest)}, not a SHA-256 (64 lowercase hex digits)")
    try:
        if not isinstance(at, str):
            raise TypeError(at)
        datetime.fromisoformat(at)
    except (TypeError, ValueError):
        raise ValueError(f"at is {shown(at)}, not an ISO 8601 time") from None
    if signature is not None and (not isinstance(signature, str) or not _HEX64.fullmatch(signature)):
        raise ValueError("signature is not an HMAC-SHA256 (64 lowercase hex digits)")
    index, prev = data.get("index"), data.get("prev")
    if (index is None) != (prev is None):
        # One without the other is no line shiprail writes: a link half stripped is refused, not
        # read as an anchor from before anchors were chained.
        has, lacks = ("index", "prev") if prev is None else ("prev", "index")
        raise ValueError(f"it has {has} but no {lacks}, so its link to the anchor before it is cut")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 1):
        raise ValueError(f"index is {shown(index)}, not a place in the log (a whole number of at least 1)")
    if prev is not None and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        raise ValueError(f"prev is {shown(prev)}, not a SHA-256 (64 lowercase hex digits)")
    return Checkpoint(seq, digest, at, signature, index, prev)


def checkpoint_line(cp: Checkpoint) -> str:
    """One line of the anchor log: ``cp`` as JSON, keys sorted, ending in a newline."""
    return json.dumps(cp.to_json(), sort_keys=True) + "\n"


@dataclass(frozen=True)
class Anchor:
    """One line of the anchor log."""

    line: int
    checkpoint: Checkpoint

    def name(self, log: str) -> str:
        """How a message names it: ``the anchor on line 3 of anchors.jsonl``."""
        return f"the anchor on line {self.line} of {log}"

    def time(self) -> datetime:
        """When it was taken (its ``at``; parsing made sure it is a time)."""
        return datetime.fromisoformat(self.checkpoint.at)


class AnchorLogInvalid(ValueError):
    """A line of the anchor log is not an anchor shiprail writes."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"line {line} {why}")
        self.line = line
        self.why = why


def parse_log(data: bytes) -> list[Anchor]:
    """Every anchor of an anchor log's bytes, in order; ``AnchorLogInvalid`` naming the first bad line.

    Blank lines are skipped. A last line without its newline is a write cut short (a full disk) or
    an edit: it is refused like any line that is no anchor, not guessed at.
    """
    anchors: list[Anchor] = []
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            cp = checkpoint_from_json(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise AnchorLogInvalid(n, "is not UTF-8 text") from None
        except (json.JSONDecodeError, RecursionError):
            raise AnchorLogInvalid(n, "is not JSON") from None
        except ValueError as exc:
            raise AnchorLogInvalid(n, f"is not an anchor: {exc}") from None
        if datetime.fromisoformat(cp.at).tzinfo is None:
            raise AnchorLogInvalid(n, f"is not an anchor: at is {shown(cp.at)}, a time without a UTC offset")
        if n == len(lines):  # no newline after it
            raise AnchorLogInvalid(n, "has no newline at its end: a write cut short (a full disk) or an edit")
        anchors.append(Anchor(n, cp))
    return anchors


def link_digest(cp: Checkpoint) -> str:
    """What the next anchor's ``prev`` records of ``cp``: the SHA-256 of its canonical JSON (keys
    sorted, no spaces), signature and link included.

    Of the JSON rather than of the line's bytes: a copy of the log whose lines were written out again
    (a log shipper's) keeps its links, while any change to a field breaks them.
    """
    return sha256_hex(canonical_json(cp.to_json()))


def chained(cp: Checkpoint, anchors: Sequence[Anchor]) -> Checkpoint:
    """``cp`` as the next line of a log holding ``anchors``: its index and the digest of the last one
    (``GENESIS`` in a log with none), to be signed after."""
    prev = link_digest(anchors[-1].checkpoint) if anchors else audit.GENESIS
    return dataclasses.replace(cp, index=len(anchors) + 1, prev=prev, signature=None)


def _count(n: int, one: str, many: str) -> str:
    """``n`` and the words that go with it: ``1 anchor comes``, ``2 anchors come``, ``no anchor comes``."""
    return f"no {one}" if n == 0 else f"{n} {one if n == 1 else many}"


def broken_link(anchors: Sequence[Anchor]) -> tuple[Anchor, str] | None:
    """The first anchor whose link does not hold, with why (the words after "line N"); None when every
    link holds.

    The anchor at place ``p`` of the log must record ``index`` p and, as ``prev``, the digest of the
    one at ``p - 1`` (``GENESIS`` at 1). Anchors without a link (written before anchors were chained)
    may only come before the first one with a link: after it, a line without one had its link
    stripped, or was appended by a shiprail that does not chain.
    """
    start: Anchor | None = None
    for place, anchor in enumerate(anchors, 1):
        cp = anchor.checkpoint
        if cp.index is None:
            if start is not None:
                return anchor, (
                    f"has no index and prev, though the anchors from line {start.line} on are chained: "
                    "its link was stripped, or a shiprail that does not chain anchors appended it"
                )
            continue
        start = start or anchor
        if cp.index != place:
            came = _count(place - 1, "anchor comes", "anchors come")
            if cp.index > place:
                gone = cp.index - place
                what = f"{_count(gone, 'anchor', 'anchors')} before it {'was' if gone == 1 else 'were'} removed"
            else:
                what = "a line was inserted before it"
            return (
                anchor,
                f"records that it is anchor {cp.index} of the log, but {came} before it: {what}, or lines were moved",
            )
        if place == 1:
            if cp.prev != audit.GENESIS:
                return (
                    anchor,
                    "records that it is anchor 1 of the log, but its prev is not the 64 zeros of a first anchor: "
                    "it was edited",
                )
        elif cp.prev != link_digest(anchors[place - 2].checkpoint):
            previous = anchors[place - 2]
            return anchor, (
                f"does not record the digest of line {previous.line} before it: line {previous.line} was "
                f"edited or replaced after line {anchor.line} was written (or line {anchor.line}'s prev was)"
            )
    return None


def inconsistency(anchors: Sequence[Anchor], log: str) -> tuple[int, str] | None:
    """Where the log contradicts itself, ``(seq, why)``; None when it does not.

    The chain only grows: a later anchor never records a lower seq than an earlier one (the log's
    tail was cut and taken again over a shorter chain, or lines were moved), and two anchors of one
    seq record one hash (one of them was made over a rewritten chain).
    """
    for before, after in itertools.pairwise(anchors):
        a, b = before.checkpoint, after.checkpoint
        if b.seq < a.seq:
            return b.seq, (
                f"{after.name(log)} records seq {b.seq}, after line {before.line} recorded seq {a.seq}: "
                "the chain went back, so its tail was cut and the chain written again after it"
            )
        if b.seq == a.seq and b.hash != a.hash:
            return b.seq, (
                f"{after.name(log)} records another hash for seq {b.seq} than line {before.line}: "
                "one of them was taken over a rewritten chain"
            )
    return None


# ------------------------------------------------------------------------------------ the file


def _lock(fd: int, operation: int, wait_s: float) -> None:
    """Take the ``flock`` ``operation`` (``LOCK_EX``, ``LOCK_SH``) on ``fd``, waiting at most ``wait_s``;
    ``BlockingIOError`` when another process holds a lock that excludes it still."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_LOCK_POLL_S)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def read_shared(path: Path) -> bytes:
    """The anchor log's bytes, read under a shared lock, waited for as a writer waits for its own
    (``ANCHOR_LOCK_WAIT_SECONDS``, then ``BlockingIOError``); ``OSError`` when it cannot be read.

    A writer appends its line, and takes back one cut short, under the exclusive lock
    (``AnchorLog``): read under the shared one, the log is always between two appends. A last line
    without its newline is then a write that was cut short and could not be taken back, or an edit;
    never a line still being written, which read without the lock would be refused as one. The lock
    is held for the read only, not while the chain is verified: a writer is kept waiting no longer
    than it takes to read the file.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            _lock(fd, fcntl.LOCK_SH, defaults.ANCHOR_LOCK_WAIT_SECONDS)
        except BlockingIOError:
            raise
        except OSError as exc:
            # A file system without locks (some FUSE mounts, a share without a lock service) holds
            # no log a shiprail writer appends to: the writer cannot lock it either. A copy there is
            # read as it is, as before, rather than refused.
            if exc.errno not in _NO_LOCKS:
                raise
        return _read_all(fd)
    finally:
        os.close(fd)  # the lock goes with it


class AnchorLog:
    """The anchor log file, open for appending and locked (``fcntl.flock``) until closed.

    The lock is waited for at most ``ANCHOR_LOCK_WAIT_SECONDS`` (``BlockingIOError`` after that):
    a lock someone keeps must not hold up a controller's pass. ``data`` is what it held when opened
    (read through the same descriptor, under the lock);
    ``append`` adds one line with one ``write``, then ``fsync``. The file is opened with
    ``O_APPEND`` (never rewritten), so it may live on an append-only mount (``chattr +a``, a WORM
    share).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _lock(self._fd, fcntl.LOCK_EX, defaults.ANCHOR_LOCK_WAIT_SECONDS)
            self.data = _read_all(self._fd)
        except BaseException:
            os.close(self._fd)
            raise

    def append(self, cp: Checkpoint) -> None:
        """Write ``cp`` as the log's last line and make it durable; ``OSError`` when it cannot be."""
        data = checkpoint_line(cp).encode()
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, f"only {written} of {len(data)} bytes were written")  # ENOSPC
            os.fsync(self._fd)
        except OSError:
            # Take back a line cut short, where the file allows it (an append-only one does not):
            # the next anchor must not be glued to it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise
        if self.created:
            # The file's name is durable once its directory is.
            with contextlib.suppress(OSError):
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)

    def close(self) -> None:
        os.close(self._fd)  # the lock goes with it


def newest(anchors: Sequence[Anchor]) -> Anchor | None:
    """The log's last anchor (the newest: the log only grows)."""
    return anchors[-1] if anchors else None


def as_checks(anchors: Sequence[Anchor], log: str) -> list[tuple[str, Checkpoint]]:
    """``anchors`` as ``audit.verify`` takes them: each with the words naming it."""
    return [(a.name(log), a.checkpoint) for a in anchors]


def check_signature(cp: Checkpoint, key: str | None, *, name: str, unsigned_advice: str, flag: str) -> None:
    """Refuse a checkpoint whose signature does not hold under ``key`` (``name`` says which one).

    With a key set, checkpoints are expected signed: an unsigned one may have had its signature
    stripped along with an edit (``AuditChainBroken``, ``unsigned_advice`` says what to do). A
    signed one without a key to check it is bad input (``flag`` names where it came from).
    """
    if cp.signature is None:
        if key:
            raise AuditChainBroken(
                f"{name} is not signed, but {defaults.AUDIT_KEY_ENV} is set; {unsigned_advice}", cp.seq
            )
        return
    if not key:
        raise BadInput(f"{flag}: {name} is signed; set {defaults.AUDIT_KEY_ENV} to the key to check it")
    if not cp.signature_ok(key):
        raise AuditChainBroken(f"{name} has a bad signature: it was altered or signed with another key", cp.seq)


# ------------------------------------------------------------------------------ taking one


class AnchorRefused(ShiprailError):
    """No anchor was written: the log or the chain does not hold, or the file cannot be written.

    ``kind`` says which (``log``, ``chain``, ``write``, ``locked``), for a controller that says each once.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


UNSIGNED_IN_SIGNED_LOG = (
    "an anchor without a signature cannot be told from a forged one; keep this log as the record of "
    "the time before the key and start a new anchor log"
)


def read_log(data: bytes, shown_as: str, *, key: str | None, flag: str) -> list[Anchor]:
    """The anchors of a log's ``data`` once the log holds: every line an anchor, no contradiction,
    every signature valid under ``key``, every link (``broken_link``). ``BadInput`` for a line that is
    no anchor (naming ``flag``), ``AuditChainBroken`` for a log that contradicts itself, a bad
    signature or a broken link."""
    try:
        anchors = parse_log(data)
    except AnchorLogInvalid as exc:
        raise BadInput(
            f"{flag}: {shown_as}: line {exc.line} {exc.why}; an anchor log holds one checkpoint per line, "
            "as `shiprail audit anchor` writes them"
        ) from None
    for anchor in anchors:
        check_signature(
            anchor.checkpoint, key, name=anchor.name(shown_as), unsigned_advice=UNSIGNED_IN_SIGNED_LOG, flag=flag
        )
    broken = broken_link(anchors)
    if broken is not None:
        # Before the seq checks: a moved line makes the seqs go back too, but only the link says what happened.
        anchor, why = broken
        raise AuditChainBroken(
            f"the anchor log {shown_as} does not hold: line {anchor.line} {why}", anchor.checkpoint.seq
        )
    problem = inconsistency(anchors, shown_as)
    if problem is not None:
        seq, why = problem
        raise AuditChainBroken(f"the anchor log {shown_as} does not hold: {why}", seq)
    return anchors


@dataclass(frozen=True)
class Taken:
    """What ``take`` did: ``checkpoint`` written, or (``written`` False) the last anchor, which already
    records the chain head."""

    checkpoint: Checkpoint
    written: bool
    line: int


def take(
    store: Store,
    path: Path,
    *,
    now: datetime,
    key: str | None,
    shown_as: str,
    flag: str,
    every_s: float | None = None,
) -> Taken:
    """Append a checkpoint of the chain head to the anchor log at ``path`` (``shown_as`` names it).

    Under the log's lock: the log must hold (``read_log``), the chain must verify up to its head and
    against every anchor already in the log (an anchor never blesses a broken chain), and a head the
    last anchor already records is not written again, nor any head before ``every_s`` has passed
    since the last anchor (when given: two controllers that both found an anchor due write one; a
    last anchor dated after ``now``, from a clock set ahead, does not hold the next one back).
    Chained to the log's last line (``chained``) and signed with ``key`` when there is one.
    ``AnchorRefused`` (nothing written) when any of that fails.
    """
    try:
        log = AnchorLog(path)
    except BlockingIOError:
        wait = defaults.ANCHOR_LOCK_WAIT_SECONDS
        raise AnchorRefused(
            f"{shown_as} is locked by another process (for more than {wait:g} s); nothing was written", "locked"
        ) from None
    except OSError as exc:
        raise AnchorRefused(
            f"{shown_as} cannot be opened ({exc.strerror or exc}); nothing was written", "write"
        ) from None
    try:
        try:
            anchors = read_log(log.data, shown_as, key=key, flag=flag)
        except ShiprailError as exc:
            raise AnchorRefused(f"{exc.message}; nothing was written", "log") from None
        last = newest(anchors)
        with store.snapshot() as s:
            head_seq, head_hash = audit.head(s)
            if last is not None and (
                (last.checkpoint.seq, last.checkpoint.hash) == (head_seq, head_hash)
                or (every_s is not None and last.time() <= now < last.time() + timedelta(seconds=every_s))
            ):
                return Taken(last.checkpoint, False, last.line)
            if head_seq < 1:
                raise AnchorRefused("the audit chain is empty: there is no head to anchor yet", "chain")
            # The chain up to the last anchor was verified, against every anchor before it, when that
            # anchor was taken: walking only from it keeps anchoring cheap on a long chain (the whole
            # walk of a million events would hold the controller's pass for a minute). Anything
            # amiss there, and the whole chain is walked to say what.
            if last is not None and 0 < last.checkpoint.seq <= head_seq:
                tail_holds = audit.continues(
                    audit.rows_from(s, last.checkpoint.seq), last.checkpoint, head_seq, head_hash
                )
            else:
                tail_holds = False
            report = (
                None
                if tail_holds
                else audit.verify(
                    audit.rows(s), head_seq=head_seq, head_hash=head_hash, anchors=as_checks(anchors, shown_as)
                )
            )
        if report is not None and report.finding is not None:
            f = report.finding
            raise AnchorRefused(
                f"audit chain broken at seq {f.seq}: {f.detail}; an anchor never blesses a broken chain, "
                "so nothing was written",
                "chain",
            )
        cp = chained(Checkpoint(head_seq, head_hash, now.isoformat()), anchors)
        if key:
            cp = cp.sign(key)
        try:
            log.append(cp)
        except OSError as exc:
            raise AnchorRefused(
                f"{shown_as} cannot be written ({exc.strerror or exc}); nothing was written", "write"
            ) from None
        line = log.data.count(b"\n") + 1
        return Taken(cp, True, line)
    finally:
        log.close()
