"""Checking a release package: its manifest, its signature, its audit events and their links.

On its own a package shows that it is whole (every file matches ``MANIFEST.sha256``, no file is
missing or added), that its files agree with each other, and that every audit event's hash is the
hash of its content and its ``prev_hash`` (events one seq apart must also link). Anyone can
recompute a manifest, so two anchors make it tamper-evident: the manifest's HMAC under
``SHIPRAIL_AUDIT_KEY`` when the package was signed, and the live chain (``--against-store``, or a
full ``shiprail audit export``), against which every event, the head at export, and the absence of
any event of the release that the package left out are checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shiprail import __version__
from shiprail.errors import BadInput, not_utf8, why_unreadable
from shiprail.export import history as h
from shiprail.export.history import EXPORTED
from shiprail.export.package import (
    CHAIN,
    EVENTS,
    MANIFEST,
    SIGNATURE,
    gates_json,
    release_json,
    rollout_json,
    sign,
    verify_json,
)
from shiprail.export.record import ReleaseRecord
from shiprail.schema.resolved import ResolvedRelease, canonical_json, sha256_hex
from shiprail.store import audit
from shiprail.store.audit import EventRow
from shiprail.store.rollouts import METRICS_AFTER_EVENT

CHAIN_BROKEN = "the audit chain itself is broken"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


@dataclass
class PackageReport:
    """What ``verify_package`` found; ``problems`` is empty when the package holds."""

    directory: Path
    release_id: str | None = None
    files: int = 0
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    signed: bool = False
    against_chain: bool = False
    problems: list[str] = field(default_factory=list)
    # What was not compared, and why (not a problem: nothing found disagrees).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "release_id": self.release_id,
            "files": self.files,
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "signed": self.signed,
            "checked_against_chain": self.against_chain,
            "notes": self.notes,
            "problems": self.problems,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _plan_text_hash(plan: Path, recorded: str) -> str:
    """The sha256 of ``plan.yaml``, or of its text with ``\\r\\n`` line endings when that is ``recorded``.

    The plan hash is that of the plan file's bytes, but the text stored (and exported as plan.yaml) was
    read with its line endings as ``\\n``: the plan of a file written with ``\\r\\n`` (a Windows editor,
    git's autocrlf) is the same text, not a plan changed outside the chain.
    """
    found = _sha256(plan)
    if found != recorded:
        crlf = plan.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if hashlib.sha256(crlf).hexdigest() == recorded:
            return recorded
    return found


def _check_manifest(directory: Path, report: PackageReport) -> bytes:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BadInput(f"{directory} is not a directory; name a package written by `shiprail release export`")
    if not path.is_file():
        raise BadInput(f"{directory} has no {MANIFEST}; it is not a package written by `shiprail release export`")
    data = path.read_bytes()
    listed: set[str] = set()
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        match = _LINE.match(line)
        if match is None:
            report.problems.append(f"{MANIFEST}:{n} is not a `sha256sum` line")
            continue
        digest, name = match.groups()
        target = (directory / name).resolve()
        if name.startswith("/") or ".." in Path(name).parts or directory.resolve() not in target.parents:
            report.problems.append(f"{MANIFEST}:{n} names {name}, outside the package")
            continue
        listed.add(name)
        if not target.is_file():
            report.problems.append(f"{name} is listed in {MANIFEST} but missing")
        elif _sha256(target) != digest:
            report.problems.append(f"{name} was changed: its sha256 no longer matches {MANIFEST}")
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} - {MANIFEST, SIGNATURE}
    for extra in sorted(present - listed):
        report.problems.append(f"{extra} is not in {MANIFEST}: it was added after the export")
    report.files = len(listed)
    return data


def _check_signature(directory: Path, manifest: bytes, key: str | None, report: PackageReport) -> None:
    path = directory / SIGNATURE
    if not path.is_file():
        if key:
            report.problems.append(
                f"the package is not signed, but SHIPRAIL_AUDIT_KEY is set: its {SIGNATURE} may have been removed "
                "along with an edit"
            )
        return
    if not key:
        raise BadInput(f"{directory} is signed ({SIGNATURE}); set SHIPRAIL_AUDIT_KEY to the key to check it")
    report.signed = True
    try:
        mac = str(json.loads(path.read_text(encoding="utf-8"))["hmac"])
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{SIGNATURE} is unreadable")
        return
    if not hmac.compare_digest(sign(manifest, key), mac):
        report.problems.append(f"{MANIFEST} does not match its signature: it was altered or signed with another key")


def _objects(doc: dict[str, Any], name: str, keys: tuple[str, ...], report: PackageReport) -> dict[str, Any]:
    """``doc`` without those of ``keys`` that are not JSON objects, each noted as a problem.

    A file shiprail wrote always has them as objects; a changed one may not, and is then reported,
    not a traceback (``'str' object has no attribute 'get'``).
    """
    out = dict(doc)
    for key in keys:
        if out.get(key) is not None and not isinstance(out[key], dict):
            report.problems.append(f"{name}: {key} is not a JSON object")
            del out[key]
    return out


def _load_json(directory: Path, name: str, report: PackageReport) -> dict[str, Any]:
    try:
        data = json.loads((directory / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.problems.append(f"{name} is missing")
        return {}
    except UnicodeDecodeError as exc:
        report.problems.append(f"{name} {not_utf8(exc)}")
        return {}
    except json.JSONDecodeError as exc:
        report.problems.append(f"{name} is not JSON ({exc.msg}, line {exc.lineno})")
        return {}
    except (ValueError, RecursionError):
        report.problems.append(f"{name} is not JSON")
        return {}
    except OSError as exc:
        report.problems.append(f"{name} {why_unreadable(exc)}")
        return {}
    if not isinstance(data, dict):
        report.problems.append(f"{name} is not a JSON object")
        return {}
    return data


def read_events(directory: Path, report: PackageReport) -> list[EventRow]:
    """The package's audit events (problems noted in ``report``)."""
    out: list[EventRow] = []
    try:
        lines = (directory / EVENTS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        report.problems.append(f"{EVENTS} is missing")
        return out
    except UnicodeDecodeError as exc:
        # A changed file, like any other (MANIFEST.sha256 names it too): the package does not hold.
        report.problems.append(f"{EVENTS} {not_utf8(exc)}, so not the audit events shiprail wrote")
        return out
    except OSError as exc:
        report.problems.append(f"{EVENTS} {why_unreadable(exc)}")
        return out
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(EventRow.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            report.problems.append(f"{EVENTS}:{n} is not an audit event")
    return out


def _check_events(
    events: list[EventRow], chain: dict[str, Any], release: dict[str, Any], report: PackageReport
) -> None:
    rid = report.release_id
    prev: EventRow | None = None
    for e in events:
        if e.release_id != rid:
            report.problems.append(f"{EVENTS}: seq {e.seq} belongs to release {e.release_id!r}, not {rid!r}")
        if audit.compute_hash(e.prev_hash, e.seq, e.at, e.actor, e.kind, e.release_id, e.payload) != e.hash:
            report.problems.append(f"{EVENTS}: seq {e.seq} was altered: its content no longer matches its hash")
        if prev is not None:
            if e.seq <= prev.seq:
                report.problems.append(f"{EVENTS}: seq {e.seq} comes after seq {prev.seq}: events were reordered")
            elif e.seq == prev.seq + 1 and e.prev_hash != prev.hash:
                report.problems.append(f"{EVENTS}: seq {e.seq} does not link to seq {prev.seq}")
        prev = e
    report.events = len(events)
    report.first_seq = events[0].seq if events else None
    report.last_seq = events[-1].seq if events else None
    head = chain.get("head") or {}
    report.head_seq, report.head_hash = head.get("seq"), head.get("hash")
    if report.head_seq is not None and (not isinstance(report.head_seq, int) or isinstance(report.head_seq, bool)):
        report.problems.append(f"{CHAIN}: head seq {report.head_seq!r} is not a seq number")
        report.head_seq = None
    expected = {
        "events": len(events),
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "last_hash": events[-1].hash if events else None,
    }
    for name, data in ((CHAIN, chain), ("release.json", release.get("audit") or {})):
        for key, value in expected.items():
            if data.get(key) != value:
                report.problems.append(f"{name}: {key} is {data.get(key)!r} but {EVENTS} says {value!r}")
    if isinstance(report.head_seq, int) and events:
        if events[-1].seq > report.head_seq:
            report.problems.append(
                f"{EVENTS}: seq {events[-1].seq} is past the chain head at export ({report.head_seq})"
            )
        elif events[-1].seq == report.head_seq and events[-1].hash != report.head_hash:
            report.problems.append(f"{CHAIN}: the head's hash is not that of seq {report.head_seq}")


def _check_plan(directory: Path, release: dict[str, Any], report: PackageReport) -> None:
    plan = directory / "plan.yaml"
    info = release.get("release") or {}
    if plan.is_file() and info.get("plan_text_sha256") and _sha256(plan) != info["plan_text_sha256"]:
        report.problems.append("plan.yaml is not the plan text release.json describes")


def _last_plan(events: list[EventRow]) -> dict[str, Any]:
    """The payload of the last ``release.created`` or ``plan.updated``: the plan the release runs ({}: none)."""
    plans = [_payload(e) for e in events if e.kind in ("release.created", "plan.updated")]
    return plans[-1] if plans else {}


def _check_record(directory: Path, release: dict[str, Any], events: list[EventRow], report: PackageReport) -> None:
    """``release.json`` and ``plan.yaml`` against what the release's own audit events record.

    Only the audit events are chained: a row of the releases table changed behind the chain's back
    (its status, its plan text, its hashes) would otherwise export into a package that holds. Its
    status must be where the last transition went, its plan (and resolved release) the one the last
    ``release.created`` or ``plan.updated`` names, its contract the one ``contract.frozen`` froze.
    """
    info = release.get("release") or {}
    last_plan = _last_plan(events)
    recorded = last_plan.get("plan_hash")
    if isinstance(recorded, str):
        plan = directory / "plan.yaml"
        for what, value in (
            ("release.json's plan_hash", info.get("plan_hash")),
            ("plan.yaml", _plan_text_hash(plan, recorded) if plan.is_file() else None),
        ):
            if value is not None and value != recorded:
                report.problems.append(
                    f"{what} is not the plan the audit events record (plan_hash {recorded[:12]}…): "
                    "the release's record was changed outside the chain"
                )
    # What the approvals approved: recorded by the events of shiprail versions that tie approvals to it.
    resolved = last_plan.get("resolved_hash")
    if isinstance(resolved, str) and info.get("resolved_hash") != resolved:
        report.problems.append(
            f"release.json's resolved_hash is not the resolved release the audit events record (resolved_hash "
            f"{resolved[:12]}…): the release's record was changed outside the chain"
        )
    if isinstance(resolved, str):
        _check_resolved(directory, resolved, report)
    frozen = [_payload(e) for e in events if e.kind == "contract.frozen"]
    if frozen and info.get("contract_hash") != frozen[-1].get("contract_hash"):
        report.problems.append(
            "release.json's contract_hash is not the contract the audit events froze: "
            "the release's record was changed outside the chain"
        )
    _check_identity(directory, info, report)
    moves = [_payload(e) for e in events if e.kind == "release.transitioned"]
    status = info.get("status")
    last = str(moves[-1].get("to", "")).split(" ")[0] if moves else None
    if last is not None and status is not None and status != last:
        report.problems.append(
            f"release.json says the release is {status}, but its last transition in the audit events "
            f"is to {last}: the release's record was changed outside the chain"
        )
    _check_release_times(info, events, report)


# release.json's times, each with the events whose payload states it (``key``: as the payload names it).
_RELEASE_TIMES: tuple[tuple[str, tuple[tuple[str, str], ...], bool], ...] = (
    ("created_at", (("release.created", "created_at"),), False),
    # When the release entered the state it is in: its last creation or transition.
    ("state_since", (("release.created", "created_at"), ("release.transitioned", "state_since")), True),
    ("frozen_at", (("contract.frozen", "frozen_at"),), True),
)


def _check_release_times(info: dict[str, Any], events: list[EventRow], report: PackageReport) -> None:
    """``release.json``'s created_at, state_since and frozen_at against the events that state them.

    Each was written with the clock read its event records (and states in its payload); an event of
    a shiprail version before that states none, and its time is then not compared (the row took the
    clock separately, and is not that instant).
    """
    for name, sources, last in _RELEASE_TIMES:
        kinds = dict(sources)
        chosen = [e for e in events if e.kind in kinds]
        if not chosen or name not in info:
            continue
        event = chosen[-1] if last else chosen[0]
        payload = _payload(event)
        if kinds[event.kind] not in payload:
            continue
        said, recorded = _frozen(info.get(name)), _frozen(payload[kinds[event.kind]])
        if said != recorded:
            report.problems.append(
                f"release.json's {name} is {_short(said)}, but the audit events record {_short(recorded)} "
                f"(seq {event.seq}, {event.kind}): {_OUTSIDE}"
            )


def _check_resolved(directory: Path, recorded: str, report: PackageReport) -> None:
    """``plan.resolved.json`` must be the resolved release whose hash the audit events record.

    It holds what the release ran: its steps and bakes, its contract, Verify, and the baseline it
    replaced (``release.json``'s service, version, baseline, owner and risk are compared with it
    below). Its hash is that of its canonical JSON (``shiprail.schema.resolved.resolved_hash``).
    """
    path = directory / "plan.resolved.json"
    if not path.is_file():
        return
    doc = _load_json(directory, "plan.resolved.json", report)
    if doc and sha256_hex(canonical_json(doc)) != recorded:
        report.problems.append(
            f"plan.resolved.json is not the resolved release the audit events record (resolved_hash "
            f"{recorded[:12]}…): {_OUTSIDE}"
        )


# What release.json states of the release that its resolved release states too.
_IDENTITY = ("service", "version", "baseline", "owner", "risk")


def _check_identity(directory: Path, info: dict[str, Any], report: PackageReport) -> None:
    """``release.json``'s service, version, baseline, owner and risk against ``plan.resolved.json``.

    The release's row keeps them in columns of their own beside the resolved release, which the
    audit events fingerprint (``resolved_hash``, checked above) and which ``plan.resolved.json`` is
    exported from. A column rewritten alone (another owner, a lower risk) would otherwise export
    into a package that holds.
    """
    if not (directory / "plan.resolved.json").is_file():
        return
    resolved = _load_json(directory, "plan.resolved.json", report)
    for key in _IDENTITY:
        said, ran = info.get(key), resolved.get(key)
        if said is not None and ran is not None and said != ran:
            report.problems.append(
                f"release.json's {key} is {_short(said)}, but the resolved release (plan.resolved.json) that the "
                f"audit events fingerprint says {_short(ran)}: {_OUTSIDE}"
            )


# What a package file's field is called in messages, where its key alone would read badly ("has by carol").
_LABELS = {"by": "principal", "initiated_by": "initiator"}
_OUTSIDE = "the release's record was changed outside the chain"


def _fields(rows: Any, *keys: str) -> list[tuple[Any, ...]]:
    """``keys`` of each JSON object of ``rows`` (a list in a package file), as tuples of hashable values."""
    if not isinstance(rows, list):
        return []
    return [tuple(_frozen(r.get(k)) for k in keys) for r in rows if isinstance(r, dict)]


def _frozen(value: Any) -> Any:
    """``value`` hashable: lists as tuples (gate lists), times as the instant they name (any offset spelling),
    mappings as their canonical JSON (an override's ``refused_by``: the same whatever order its keys were
    written in)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value).astimezone(UTC).isoformat()
        except ValueError:
            return value
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def _recorded(events: list[EventRow], kind: str, *keys: str) -> list[tuple[Any, ...]]:
    """``keys`` of each ``kind`` event's payload (``actor`` is the event's actor), as ``_fields`` spells them."""
    out = []
    for e in events:
        if e.kind == kind:
            p = _payload(e) | {"actor": e.actor}
            out.append(tuple(_frozen(p.get(k)) for k in keys))
    return out


def _agree(
    name: str,
    what: str,
    listed: list[tuple[Any, ...]],
    recorded: list[tuple[Any, ...]],
    labels: tuple[str, ...],
    report: PackageReport,
) -> None:
    """``listed`` (read from the package file ``name``) must be what the events record, as multisets."""
    have, want = Counter(listed), Counter(recorded)
    extra, gone = sorted((have - want).elements(), key=repr), sorted((want - have).elements(), key=repr)
    if not extra and not gone:
        return

    def show(item: tuple[Any, ...], at: list[int]) -> str:
        return ", ".join(f"{labels[i]} {_short(item[i])}" for i in at)

    every = list(range(len(labels)))
    if len(extra) == len(gone) == 1:
        # One record rewritten: name it by what still agrees, and say only what differs.
        differs = [i for i in every if extra[0][i] != gone[0][i]]
        same = [i for i in every if i not in differs]
        which = f" with {show(extra[0], same[:1])}" if same else ""
        detail = (
            f"the {what}{which} has {show(extra[0], differs)}, but the audit events record {show(gone[0], differs)}"
        )
    elif extra:
        detail = f"{'; '.join(f'{what} ' + show(x, every) for x in extra)} is not in the audit events"
        if gone:
            detail += f", which record {'; '.join(f'{what} ' + show(x, every) for x in gone)} instead"
    else:
        detail = f"{'; '.join(f'{what} ' + show(x, every) for x in gone)}, which the audit events record, is not in it"
    report.problems.append(f"{name}: {detail}: {_OUTSIDE}")


def _short(value: Any) -> str:
    """A value for a message: a hash cut to 12 digits, text with spaces quoted, long text cut short."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    text = value if isinstance(value, str) and " " not in value else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 70 else text[:68] + "…" + text[-1]


def _withdrew(revocation: EventRow, event: EventRow) -> bool:
    """Whether ``revocation`` (an ``approval.revoked``) withdrew the approval ``event`` records: one of its
    actor, of a plan and resolved hash it names. An approval given before migration 0010 has an event
    without its resolved hash (the migration may have filled the row's in): matched by its plan hash."""
    if event.kind != "release.approved" or event.actor != revocation.actor:
        return False
    withdrawn = [a for a in _payload(revocation).get("revoked", []) if isinstance(a, dict)]
    approved = _payload(event)
    if "resolved_hash" not in approved:
        return approved.get("plan_hash") in {a.get("plan_hash") for a in withdrawn}
    return (approved.get("plan_hash"), approved["resolved_hash"]) in {
        (a.get("plan_hash"), a.get("resolved_hash")) for a in withdrawn
    }


def unrevoked(events: list[EventRow]) -> list[EventRow]:
    """``events`` without the approvals and QA sign-offs their giver revoked since: what the package's
    approvals and sign-offs are compared with (a revocation deletes its row, and records what it withdrew)."""
    out: list[EventRow] = []
    for e in events:
        if e.kind == "approval.revoked":
            out = [x for x in out if not _withdrew(e, x)]
        elif e.kind == "qa.signoff_revoked":
            item = _payload(e).get("item")
            out = [x for x in out if not (x.kind == "qa.signed_off" and _payload(x).get("item") == item)]
        else:
            out.append(e)
    return out


def _approvals_listed(rows: Any, events: list[EventRow]) -> list[tuple[Any, ...]]:
    """gates.json's approvals as (principal, plan_hash, resolved_hash), to compare with their events.

    What an approval approved (its ``resolved_hash``) counts at the Stage gate, so it is compared
    too; but an approval given before migration 0010 has an event without it (the migration may
    have filled the row's in): such a row is compared by principal and plan hash alone.
    """
    listed = _fields(rows, "by", "plan_hash", "resolved_hash")
    recorded = _recorded(events, "release.approved", "actor", "plan_hash", "resolved_hash")
    stated = Counter(r for r in recorded if r[2] is not None)
    older = {r[:2] for r in recorded if r[2] is None}
    out = []
    for row in listed:
        if stated[row] > 0:
            stated[row] -= 1
            out.append(row)
        else:
            out.append((*row[:2], None) if row[:2] in older else row)
    return out


def _stated(
    name: str,
    what: str,
    rows: Any,
    field: str,
    events: list[EventRow],
    kinds: str | tuple[str, ...],
    id_key: str,
    report: PackageReport,
) -> None:
    """``field`` of the rows of ``rows`` (a package file's list, by ``id``) against the events of
    ``kinds`` that state it in their payload (``id_key`` naming the row; two that state the same
    value count once), as ``_stated_agree`` compares them.
    """
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    recorded = list(
        dict.fromkeys(
            ((_frozen(p.get(id_key)),), _frozen(p[field]))
            for p in (_payload(e) for e in events if e.kind in kinds)
            if field in p
        )
    )
    _stated_agree(name, what, _keeps(rows, ("id",), (field,)), [(k, {field: v}) for k, v in recorded], ("id",), report)


# A row (or an event of it): what identifies it, and the fields it keeps (or the event states) by label.
_Kept = list[tuple[tuple[Any, ...], dict[str, Any]]]


def _keeps(rows: Any, key: tuple[str, ...], labels: Iterable[str]) -> _Kept:
    """The rows of a package file's list: ``key``'s fields, and the fields of ``labels``."""
    if not isinstance(rows, list):
        return []
    return [
        (tuple(_frozen(r.get(k)) for k in key), {label: _frozen(r.get(label)) for label in labels})
        for r in rows
        if isinstance(r, dict)
    ]


def _states(events: list[EventRow], kind: str, key: tuple[str, ...], stated: dict[str, str]) -> _Kept:
    """Each ``kind`` event: ``key``'s payload keys (``actor``: its actor), and what it states of its row
    (``stated``: a row's field's label -> the payload key stating it), where it states it."""
    out: _Kept = []
    for e in events:
        if e.kind == kind:
            p = _payload(e) | {"actor": e.actor}
            kept = {label: _frozen(p[k]) for label, k in stated.items() if k in p}
            out.append((tuple(_frozen(p.get(k)) for k in key), kept))
    return out


def _stated_agree(
    name: str, what: str, listed: _Kept, recorded: _Kept, key_labels: tuple[str, ...], report: PackageReport
) -> None:
    """The fields events state of their rows (``recorded``) against the rows (``listed``, by the same
    key), one field at a time: one line per field that differs.

    A row whose key no event records, or an event of no row, was reported where the rows were
    compared whole, and is left out here. An event of a shiprail before a field was stated does not
    state it, and the rows of its key are not compared on it: the package of a release recorded then,
    even in part (shiprail upgraded while it ran), still holds.
    """
    have = {k for k, _ in listed}
    for label in dict.fromkeys(f for _, kept in recorded for f in kept):
        want = [(*k, kept[label]) for k, kept in recorded if k in have and label in kept]
        unstated = Counter(k for k, kept in recorded if k in have and label not in kept)
        keys = {w[:-1] for w in want}
        got = [(*k, kept.get(label)) for k, kept in listed if k in keys]
        # As many rows of a key as its events that do not state the field: theirs, not compared.
        for row in sorted((Counter(got) - Counter(want)).elements(), key=repr):
            if unstated[row[:-1]] > 0:
                unstated[row[:-1]] -= 1
                got.remove(row)
        _agree(name, what, got, want, (*key_labels, label), report)


def _intact(events: list[EventRow]) -> bool:
    """Whether there are events and each is the content its hash says (else it was reported as altered)."""
    return bool(events) and all(
        audit.compute_hash(e.prev_hash, e.seq, e.at, e.actor, e.kind, e.release_id, e.payload) == e.hash for e in events
    )


def _check_tables(directory: Path, events: list[EventRow], report: PackageReport) -> None:
    """``gates.json``, ``rollout.json``'s analyses and ``rollback.json`` against the audit events that
    recorded the same facts.

    Approvals, QA sign-offs, check runs, gate evaluations, overrides, post-mortems, analyses and
    rollback logs live in tables of their own, which are not chained; each was written in the same
    transaction as an audit event stating it. A row rewritten behind the chain's back (who
    approved, an override's reason, what fired a rollback) would otherwise export into a package
    that holds. When an event itself was altered (reported as such), the records are not compared:
    they would disagree with it, and the fault is the event's, not the release's record.
    """
    if not _intact(events):
        return
    # An approval or sign-off revoked since has no row: its event is compared with none.
    events = unrevoked(events)
    if (directory / "gates.json").is_file():
        gates = _load_json(directory, "gates.json", report)
        checks: list[tuple[str, Any, str, tuple[str, ...], tuple[str, ...]]] = [
            ("check_runs", "check run", "check.recorded", ("kind", "name", "passed", "summary"), ()),
            # by: who acted, the event's actor (written together, with one actor, by every shiprail).
            (
                "evaluations",
                "gate evaluation",
                "gate.evaluated",
                ("action", "gate", "verdict", "reason", "by"),
                ("action", "gate", "verdict", "reason", "actor"),
            ),
            (
                "overrides",
                "override",
                "override.granted",
                # refused_by: what each gate passed was refused for, which decides what the override
                # covers (``shiprail.domain.refusals``); null in both for an override stored before it.
                ("id", "action", "gates", "refused_by", "by", "reason"),
                ("override_id", "action", "gates", "refused_by", "actor", "reason"),
            ),
        ]
        for key, what, kind, fields, recorded_as in checks:
            _agree(
                "gates.json",
                what,
                _fields(gates.get(key), *fields),
                _recorded(events, kind, *(recorded_as or fields)),
                tuple(_LABELS.get(f, f) for f in fields),
                report,
            )
        _agree(
            "gates.json",
            "approval",
            _approvals_listed(gates.get("approvals"), events),
            _recorded(events, "release.approved", "actor", "plan_hash", "resolved_hash"),
            ("principal", "plan_hash", "resolved_hash"),
            report,
        )
        # A sign-off can be given again by another person (its row rewritten): the last event per item counts.
        last: dict[Any, tuple[Any, ...]] = {}
        for item, by in _recorded(events, "qa.signed_off", "item", "actor"):
            last[item] = (item, by)
        _agree(
            "gates.json",
            "QA sign-off",
            _fields(gates.get("qa_signoffs"), "item", "by"),
            list(last.values()),
            ("item", "signer"),
            report,
        )
        pms = gates.get("postmortems")
        _agree(
            "gates.json",
            "post-mortem",
            _fields(pms, "id", "override_id"),
            _recorded(events, "postmortem.opened", "postmortem_id", "override_id"),
            ("id", "override"),
            report,
        )
        closed = [r for r in pms if isinstance(r, dict) and r.get("status") == "done"] if isinstance(pms, list) else []
        _agree(
            "gates.json",
            "closed post-mortem",
            _fields(closed, "id", "closed_by", "summary"),
            _recorded(events, "postmortem.closed", "postmortem_id", "actor", "summary"),
            ("id", "closer", "summary"),
            report,
        )
        for field in ("opened_at", "service"):
            _stated("gates.json", "post-mortem", pms, field, events, "postmortem.opened", "postmortem_id", report)
        _stated("gates.json", "post-mortem", pms, "closed_at", events, "postmortem.closed", "postmortem_id", report)
        _check_stated_gates(gates, events, report)
    if (directory / "rollout.json").is_file():
        # Each analysis row was written with its analysis.completed event, which states its verdicts.
        listed = _load_json(directory, "rollout.json", report).get("analyses")
        rows = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
        payloads = [_payload(e) for e in events if e.kind == "analysis.completed"]
        keys = ("step", "weight", "verdict", "results")
        _agree("rollout.json", "analysis", _analyses(rows, "results"), _analyses(payloads, "triggers"), keys, report)
        # Its id, the release's state and its time, stated by its event since shiprail states them.
        stated = {"id": "analysis_id", "status": "status", "at": "analysed_at"}
        _stated_agree(
            "rollout.json",
            "analysis",
            [(k, kept) for k, (_, kept) in zip(_analyses(rows, "results"), _keeps(rows, (), stated), strict=True)],
            [
                (k, {label: _frozen(p[key]) for label, key in stated.items() if key in p})
                for k, p in zip(_analyses(payloads, "triggers"), payloads, strict=True)
            ],
            keys,
            report,
        )
    decided_fields = ("id", "cause", "trigger", "reason", "value", "threshold", "initiated_by", "detected_at")
    decided = _recorded(
        events,
        "rollback.decided",
        "rollback_id",
        "cause",
        "trigger",
        "reason",
        "value",
        "threshold",
        "actor",
        "detected_at",
    )
    # ``override_id``: of the override whose executive confirmed the revert by hand (None: the router did).
    confirmed = _recorded(
        events, "rollback.confirmed", "rollback_id", "max_duration_s", "met", "detected_to_confirmed_s", "override_id"
    )
    if (directory / "rollback.json").is_file():
        logs = _load_json(directory, "rollback.json", report).get("rollbacks")
    elif decided:
        report.problems.append(f"rollback.json is missing, but the audit events record a rollback: {_OUTSIDE}")
        return
    else:
        return
    _agree(
        "rollback.json",
        "rollback",
        _fields(logs, *decided_fields),
        decided,
        tuple(_LABELS.get(f, f) for f in decided_fields),
        report,
    )
    for field in ("decided_at", "weight_before"):
        _stated("rollback.json", "rollback", logs, field, events, "rollback.decided", "rollback_id", report)
    # The revert's first attempt: stated by the router.intent that made it, and by its confirmation.
    began = ("router.intent", "rollback.confirmed")
    _stated("rollback.json", "rollback", logs, "revert_started_at", events, began, "rollback_id", report)
    # What confirmed the revert: the router's word (which SDKs acknowledged), or an executive's by hand.
    _stated("rollback.json", "rollback", logs, "confirmation", events, "rollback.confirmed", "rollback_id", report)
    _metrics_after_agree(logs, events, report)
    ids = {c[0] for c in confirmed}
    confirmed_logs = [r for r in logs if isinstance(r, dict) and r.get("id") in ids] if isinstance(logs, list) else []
    _agree(
        "rollback.json",
        "confirmed rollback",
        [
            (*row, _revert_seconds(log), _confirmed_by_hand(log))
            for row, log in zip(
                _fields(confirmed_logs, "id", "max_duration_s", "max_duration_met"), confirmed_logs, strict=True
            )
        ],
        confirmed,
        ("id", "max_duration_s", "max_duration_met", "detected_to_confirmed_s", "confirmed by hand in override"),
        report,
    )


# The label of a row's evidence by its digest: events state a gate evaluation's or a check run's
# evidence (JUnit cases, Locust numbers, freeze windows…) by the SHA-256 of its canonical JSON.
_EVIDENCE = "evidence sha256"

# What the events of gates.json's rows state of them, beside the fields compared above: (the file's
# list, what a row is, its event, the row's key fields, the same in the event, and what the event
# states: a row's field -> its payload key). Events of a shiprail before they stated it state none.
_GATES_STATED: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...], dict[str, str]], ...] = (
    (
        "approvals",
        "approval",
        "release.approved",
        ("by", "plan_hash", "resolved_hash"),
        ("actor", "plan_hash", "resolved_hash"),
        {"at": "approved_at"},
    ),
    (
        "check_runs",
        "check run",
        "check.recorded",
        ("kind", "name", "passed", "summary"),
        ("kind", "name", "passed", "summary"),
        {"at": "recorded_at", _EVIDENCE: "evidence_sha256"},
    ),
    (
        "evaluations",
        "gate evaluation",
        "gate.evaluated",
        ("action", "gate", "verdict", "reason", "by"),
        ("action", "gate", "verdict", "reason", "actor"),
        {"at": "evaluated_at", _EVIDENCE: "evidence_sha256", "refusal": "refusal"},
    ),
    ("overrides", "override", "override.granted", ("id",), ("override_id",), {"at": "granted_at"}),
)


def _check_stated_gates(gates: dict[str, Any], events: list[EventRow], report: PackageReport) -> None:
    """What the events state of gates.json's rows beside what identifies them: when each was given,
    recorded, evaluated or granted (read from the clock once with its event), and a gate evaluation's
    and a check run's evidence (by its SHA-256) and a gate evaluation's refusal. A row rewritten there
    (an approval given later, a freeze window's evidence changed) is named, one line per field."""
    for key, what, kind, fields, recorded_as, stated in _GATES_STATED:
        rows = gates.get(key)
        if isinstance(rows, list) and _EVIDENCE in stated:
            rows = [r | {_EVIDENCE: _digest(r)} if isinstance(r, dict) else r for r in rows]
        _stated_agree(
            "gates.json",
            what,
            _keeps(rows, fields, stated),
            _states(events, kind, recorded_as, stated),
            tuple(_LABELS.get(f, f) for f in fields),
            report,
        )
    # A sign-off given again by another person keeps its item's last event (as compared above).
    last: dict[Any, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for k, kept in _states(events, "qa.signed_off", ("item", "actor"), {"at": "signed_off_at"}):
        last[k[0]] = (k, kept)
    listed = _keeps(gates.get("qa_signoffs"), ("item", "by"), ("at",))
    _stated_agree("gates.json", "QA sign-off", listed, list(last.values()), ("item", "signer"), report)


def _digest(row: dict[str, Any]) -> str | None:
    """The SHA-256 of a row's evidence, of its canonical JSON (as the store keeps it); None without one."""
    return sha256_hex(canonical_json(row["evidence"])) if "evidence" in row else None


# What each metric read after a revert, one row per trigger: what rollback.json's metrics_after keep.
_AFTER = ("trigger", "rollback", "metric", "window_s", "canary", "baseline")


def _metrics_after_agree(logs: Any, events: list[EventRow], report: PackageReport) -> None:
    """Each rollback's ``metrics_after`` (what the contract's metrics read once traffic was back on the
    baseline) against the ``rollback.metrics_after`` event the controller wrote with them, trigger by
    trigger. A rollback without one (confirmed by hand, its metrics not read yet, or recorded by a
    shiprail before they were stated) is not compared: its package still holds."""
    stated = [_payload(e) for e in events if e.kind == METRICS_AFTER_EVENT]
    ids = {p.get("rollback_id") for p in stated}

    def rows(rollback: Any, metrics: Any) -> list[tuple[Any, ...]]:
        read = [m if isinstance(m, dict) else {} for m in (metrics if isinstance(metrics, list) else [metrics])]
        return [tuple(rollback if k == "rollback" else _frozen(m.get(k)) for k in _AFTER) for m in read]

    kept = [r for r in logs if isinstance(r, dict) and r.get("id") in ids] if isinstance(logs, list) else []
    listed = [row for log in kept for row in rows(log.get("id"), log.get("metrics_after"))]
    recorded = [row for p in stated for row in rows(p.get("rollback_id"), p.get("metrics_after"))]
    _agree("rollback.json", "metric read after the revert", listed, recorded, _AFTER, report)


# What rollout.json tells of the rollout as it ran, each part derived from the audit events alone (with
# the resolved release, and release.json's times the events state): its rows' key (None: their place).
_PROGRESS: tuple[tuple[str, str, str | None], ...] = (
    ("as_run", "step as run", "step"),
    ("phases", "phase", None),
    ("router", "router call", "seq"),
    ("dry_runs", "dry run", None),
)


def _check_derived(directory: Path, release: dict[str, Any], events: list[EventRow], report: PackageReport) -> None:
    """What the export derived from the events and records, derived again from the package's own.

    Which steps the release went through, at what weight, when each was entered, confirmed by the
    router and left, and by what (``as_run``), every state it was in (``phases``), every weight the
    router confirmed (``router``) and so the traffic the new version served (``exposure``), each
    step's last metrics (``metrics_per_step``), and the validation window with what was seen in it
    (``verify.json``): the export derives each from the events and the analyses
    (``shiprail.export.history``), so here they are derived again from the package's own events and
    analyses (each compared with its event above) and must be the same; so must what it sums up
    (``_check_summaries``). A field a package row lacks (written by an earlier shiprail) is not
    compared.
    """
    exported_by = release.get("shiprail_version")
    if isinstance(exported_by, str) and exported_by != __version__:
        # Another shiprail may derive them otherwise: a difference would be the versions', not tampering.
        report.notes.append(
            f"what the export derived from the events (rollout.json's progress and metrics, verify.json, the "
            f"summaries) was not derived again: the package was exported by shiprail {exported_by} and this is "
            f"{__version__}; verify it with shiprail {exported_by} to compare them"
        )
        return
    record = _package_record(directory, release, events) if _intact(events) else None
    if record is None:
        return
    try:  # as the export wrote them
        derived = json.loads(json.dumps(rollout_json(record), default=str))
        seen = json.loads(json.dumps(verify_json(record), default=str))
        told = json.loads(json.dumps(release_json(record, record.state_since, [], None), default=str))
        gates = json.loads(json.dumps(gates_json(record), default=str))
        places = h.rollback_places(record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return  # not a record shiprail wrote: the checks above name what is wrong with it
    _check_summaries(directory, release, told, gates, places, report)
    if (directory / "rollout.json").is_file():
        rollout = _load_json(directory, "rollout.json", report)
        for key, what, ident in _PROGRESS:
            if key in derived:
                _rows_agree("rollout.json", what, rollout.get(key), derived[key], ident, report)
        planned, shown = derived.get("planned") or {}, rollout.get("planned")
        if isinstance(shown, dict):
            _rows_agree("rollout.json", "planned step", shown.get("steps"), planned.get("steps"), None, report)
            for key in ("analysis_interval_s", "verify_window_s"):
                _value_agrees("rollout.json", f"planned.{key}", shown, planned, key, report)
        exposure, shown = derived.get("exposure") or {}, rollout.get("exposure")
        if isinstance(shown, dict):
            _rows_agree("rollout.json", "exposure", shown.get("per_weight"), exposure.get("per_weight"), None, report)
            _value_agrees(
                "rollout.json", "exposure.full_traffic_seconds", shown, exposure, "full_traffic_seconds", report
            )
        _check_metrics(rollout.get("metrics_per_step"), derived["metrics_per_step"], report)
    if (directory / "verify.json").is_file():
        _check_verify(_load_json(directory, "verify.json", report), seen, report)


# What release.json tells of the release beside its record: from the resolved release (risk_reason,
# summary, tags), the plan text (changes, user_facing) and the release.created event (plan_file).
_TOLD = ("risk_reason", "summary", "changes", "user_facing", "tags", "plan_file")


def _check_summaries(
    directory: Path,
    release: dict[str, Any],
    told: dict[str, Any],
    gates: dict[str, Any],
    places: list[str],
    report: PackageReport,
) -> None:
    """What the package sums up from the release's records and events: ``release.json``'s release (the
    fields of ``_TOLD``) and ``outcome`` (how it ended, in a headline and a sentence), ``gates.json``'s
    ``summary`` and where each evaluation happened, whether each approval counts for the release as
    it ran (``current``), and ``rollback.json``'s ``decided_at`` (where each rollback was decided)."""
    info, outcome = release.get("release") or {}, release.get("outcome")
    for key in _TOLD:
        _value_agrees("release.json", key, info, told["release"], key, report)
    if isinstance(outcome, dict):
        for key in told["outcome"]:
            _value_agrees("release.json", f"outcome.{key}", outcome, told["outcome"], key, report)
    if (directory / "gates.json").is_file():
        listed = _load_json(directory, "gates.json", PackageReport(directory))
        _rows_agree("gates.json", "gate summary", listed.get("summary"), gates["summary"], None, report)
        # The evaluations as listed, each placed again from the events (where it happened).
        _rows_agree("gates.json", "gate evaluation", listed.get("evaluations"), gates["evaluations"], "id", report)
        resolved = info.get("resolved_hash")
        approvals = listed.get("approvals")
        rows = [r for r in approvals if isinstance(r, dict)] if isinstance(approvals, list) else []
        _agree(
            "gates.json",
            "approval",
            [(n, _frozen(r["current"])) for n, r in enumerate(rows, 1) if "current" in r],
            [(n, r.get("resolved_hash") == resolved) for n, r in enumerate(rows, 1) if "current" in r],
            ("number", "current"),
            report,
        )
        _counts_agree("approval", rows, gates.get("approvals"), report)
        signoffs = listed.get("qa_signoffs")
        signed = [r for r in signoffs if isinstance(r, dict)] if isinstance(signoffs, list) else []
        _counts_agree("QA sign-off", signed, gates.get("qa_signoffs"), report)
    if (directory / "rollback.json").is_file():
        logs = _load_json(directory, "rollback.json", PackageReport(directory))
        _value_agrees("rollback.json", "decided_at", logs, {"decided_at": places}, "decided_at", report)


def _counts_agree(what: str, rows: list[dict[str, Any]], derived: Any, report: PackageReport) -> None:
    """gates.json's approvals or QA sign-offs (``rows``): whether each counts, as derived again from the
    same rows, the events and the gate evaluations (``h.approval_counts``, ``h.signoff_counts``)."""
    pairs = list(enumerate(zip(rows, derived if isinstance(derived, list) else [], strict=False), 1))
    _agree(
        "gates.json",
        what,
        [(n, _frozen(r["counts"])) for n, (r, _) in pairs if "counts" in r],
        [(n, _frozen(d.get("counts"))) for n, (r, d) in pairs if "counts" in r],
        ("number", "counts"),
        report,
    )


def _check_metrics(listed: Any, derived: list[dict[str, Any]], report: PackageReport) -> None:
    """``rollout.json``'s ``metrics_per_step``: each step's last analysis as its ``analysis.completed``
    event records it (its time and place as the analyses listed beside it say), trigger by trigger."""
    _rows_agree("rollout.json", "metrics per step", listed, derived, "step", report, nested=("triggers", "probes"))
    shown = {_frozen(r.get("step")): r for r in listed if isinstance(r, dict)} if isinstance(listed, list) else {}
    for row in derived:
        step = _frozen(row["step"])
        if step in shown:
            for key in ("triggers", "probes"):
                if key in shown[step]:
                    what = f"metrics of step {step}" + (" (probe)" if key == "probes" else "")
                    _rows_agree("rollout.json", what, shown[step][key], row[key], "trigger", report)


# verify.json's lists: their rows' key (None: their place).
_VERIFY_ROWS = {"handovers": ("on-call handover", None), "probes": ("probe", "name"), "analyses": ("analysis", "id")}


def _check_verify(listed: dict[str, Any], derived: dict[str, Any], report: PackageReport) -> None:
    """``verify.json``: the validation window (when it opened, its planned end, when and by what it
    closed, who was on call and each handover) as the events record it, and what the probes and the
    analyses during Verify saw as ``rollout.json``'s analyses (each compared with its event) say."""
    for key, value in derived.items():
        if key in _VERIFY_ROWS:
            what, ident = _VERIFY_ROWS[key]
            _rows_agree("verify.json", what, listed.get(key), value, ident, report)
        else:
            _value_agrees("verify.json", key, listed, derived, key, report)


def _package_record(directory: Path, release: dict[str, Any], events: list[EventRow]) -> ReleaseRecord | None:
    """The release as its package tells it, to derive what the export derived from it; None when the
    package cannot tell it (no resolved release, no events, times that are not times)."""
    info = release.get("release") or {}
    path = directory / "plan.resolved.json"
    if not events or not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        resolved = ResolvedRelease.model_validate_json(raw)
        created, since = (datetime.fromisoformat(str(info[k])) for k in ("created_at", "state_since"))
    except (OSError, KeyError, TypeError, ValueError):
        return None
    recorded = _last_plan(events).get("resolved_hash")
    if isinstance(recorded, str) and sha256_hex(canonical_json(json.loads(raw))) != recorded:
        return None  # not what the release ran (reported): what it would derive is not the release's
    quiet = PackageReport(directory)  # what cannot be read was reported where it is checked

    def rows(name: str, key: str) -> list[dict[str, Any]]:
        listed = _load_json(directory, name, quiet).get(key) if (directory / name).is_file() else None
        return [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []

    plan = directory / "plan.yaml"
    try:
        text = plan.read_text(encoding="utf-8") if plan.is_file() else ""
    except (OSError, ValueError):
        text = ""
    record = ReleaseRecord(
        id=str(info.get("id")),
        service=resolved.service,
        version=resolved.version,
        baseline=resolved.baseline,
        owner=resolved.owner,
        risk=resolved.risk,
        status="planned",  # where its events put it, below
        step=None,
        paused_from=None,
        created_at=created,
        state_since=since,
        frozen_at=None,
        plan_file=str(info.get("plan_file")),
        plan_text=text,
        plan_hash="",
        contract_hash="",
        resolved_hash="",
        resolved=resolved,
        events=events,
        gates=rows("gates.json", "evaluations"),
        # Whether each approval counts is derived again from these (by whom, of what), its events
        # (who owned the release) and the approvals gate's evaluation at Stage, each compared above.
        approvals=[
            r | {"current": r.get("resolved_hash") == info.get("resolved_hash")}
            for r in rows("gates.json", "approvals")
        ],
        signoffs=rows("gates.json", "qa_signoffs"),
        rollbacks=rows("rollback.json", "rollbacks"),
        analyses=rows("rollout.json", "analyses"),
    )
    # Where it stands as its last transition put it (release.json's status is compared with that above;
    # the outcome of a release in flight names its step).
    place = h.place_now(record)
    return replace(record, status=place.status, step=place.step)


def _rows_agree(
    name: str,
    what: str,
    listed: Any,
    derived: Any,
    ident: str | None,
    report: PackageReport,
    *,
    nested: tuple[str, ...] = (),
) -> None:
    """The rows of a package file's list (``listed``) against those derived from the events, matched by
    their ``ident`` (None: by their place, ``number`` 1, 2…), field by field (but the ``nested`` lists,
    which the caller compares row by row)."""
    label = ident or "number"

    def keyed(rows: Any) -> dict[Any, dict[str, Any]]:
        if not isinstance(rows, list):
            return {}
        return {_frozen(r.get(ident)) if ident else n: r for n, r in enumerate(rows, 1) if isinstance(r, dict)}

    have, want = keyed(listed), keyed(derived)
    _agree(name, what, [(k,) for k in have], [(k,) for k in want], (label,), report)
    for key in dict.fromkeys(f for row in want.values() for f in row):
        if key == ident or key in nested:
            continue
        common = [k for k in want if k in have and key in have[k]]
        _agree(
            name,
            what,
            [(k, _frozen(have[k][key])) for k in common],
            [(k, _frozen(want[k][key])) for k in common],
            (label, key),
            report,
        )


def _value_agrees(
    name: str, what: str, listed: dict[str, Any], derived: dict[str, Any], key: str, report: PackageReport
) -> None:
    """One value of a package file against the one derived from the events (when the file states it)."""
    if key in listed and _frozen(listed[key]) != _frozen(derived.get(key)):
        report.problems.append(
            f"{name}'s {what} is {_short(listed[key])}, but the audit events record {_short(derived.get(key))}: "
            f"{_OUTSIDE}"
        )


def _analyses(rows: list[Any], results: str) -> list[tuple[Any, ...]]:
    """Analyses (rollout.json's, or analysis.completed payloads with their results under ``results``) as
    (step, weight, verdict, every trigger's result as one canonical JSON text)."""
    return [
        (
            *(_frozen(r.get(k)) for k in ("step", "weight", "verdict")),
            json.dumps(r.get(results), sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        )
        for r in rows
        if isinstance(r, dict)
    ]


def _confirmed_by_hand(log: dict[str, Any]) -> Any:
    """The override whose executive a rollback log says confirmed its revert by hand (None: the router)."""
    confirmation = log.get("confirmation")
    if isinstance(confirmation, dict) and confirmation.get("by_hand"):
        return _frozen(confirmation.get("override_id"))
    return None


def _revert_seconds(log: dict[str, Any]) -> Any:
    """How long a rollback log says its revert took, from detection to the router's confirmation, as
    ``rollback.confirmed`` records it (seconds, to 4 places; what the retrospective and release show tell)."""
    try:
        took = datetime.fromisoformat(log["revert_confirmed_at"]) - datetime.fromisoformat(log["detected_at"])
    except (KeyError, TypeError, ValueError):  # not times shiprail wrote: they cannot agree with the event
        return log.get("revert_confirmed_at")
    return round(took.total_seconds(), 4)


def _check_retrospective(
    directory: Path, events: list[EventRow], release: dict[str, Any], report: PackageReport
) -> None:
    """``retrospective.md`` must be the version the audit chain fingerprints last (retro.generated / retro.edited)."""
    path = directory / "retrospective.md"
    if not path.is_file():
        return
    digest = _sha256(path)
    meta = release.get("retrospective") or {}
    if meta.get("sha256") != digest:
        report.problems.append(
            f"retrospective.md is not the retrospective release.json describes (sha256 {digest[:16]}…)"
        )
    recorded = [e for e in events if e.kind in ("retro.generated", "retro.edited")]
    if not recorded:
        report.problems.append("retrospective.md has no retro.generated or retro.edited event in audit/events.jsonl")
        return
    last = recorded[-1]
    if _payload(last).get("sha256") != digest:
        report.problems.append(
            f"retrospective.md is not the version seq {last.seq} ({last.kind}) fingerprints: it was edited after export"
        )


def check_against_chain(
    events: list[EventRow],
    rows: Iterable[EventRow],
    report: PackageReport,
    *,
    head: tuple[int, str] | None = None,
    manifest: bytes | None = None,
) -> None:
    """Check the package's events against the whole chain (from the store, or a full audit export).

    With ``manifest`` (the package's ``MANIFEST.sha256``), the chain must also hold the
    ``package.exported`` event of this very manifest: every file of the package is then the one
    the store wrote, not only its audit events.
    """
    chain = list(rows)
    verdict = audit.verify(chain, head_seq=head[0] if head else None, head_hash=head[1] if head else None)
    report.against_chain = True
    if not verdict.ok and verdict.finding is not None:
        report.problems.append(f"{CHAIN_BROKEN} at seq {verdict.finding.seq}: {verdict.finding.detail}")
    by_seq = {r.seq: r for r in chain}
    gone = [e.seq for e in events if e.seq not in by_seq]
    differ = [e.seq for e in events if e.seq in by_seq and by_seq[e.seq] != e]
    # A chain rewritten from one event on differs at every later one: the first is where, the count how much.
    if gone:
        report.problems.append(f"seq {gone[0]} of the package is not in the chain{_more(gone)}")
    if differ:
        report.problems.append(
            f"seq {differ[0]} of the package differs from the chain's seq {differ[0]}{_more(differ)}"
        )
    if report.head_seq is not None:
        at_head = by_seq.get(report.head_seq)
        if report.head_seq and (at_head is None or at_head.hash != report.head_hash):
            report.problems.append(
                f"the package's chain head (seq {report.head_seq}) does not match the chain: it was rewritten after"
            )
        packaged = {e.seq for e in events}
        left_out = [
            r.seq
            for r in chain
            if r.release_id == report.release_id and r.seq <= report.head_seq and r.seq not in packaged
        ]
        if left_out:
            report.problems.append(
                f"seq {left_out[0]} of release {report.release_id} is in the chain but not in the package"
                + (f" (and {len(left_out) - 1} more)" if len(left_out) > 1 else "")
            )
    if manifest is not None:
        _check_exported(chain, manifest, report)


def _more(seqs: list[int]) -> str:
    """`` (and 3 more: seqs 7, 9, 12)`` after the first of ``seqs``; nothing when it is alone."""
    rest = seqs[1:]
    if not rest:
        return ""
    shown = ", ".join(str(n) for n in rest[:10]) + (", …" if len(rest) > 10 else "")
    return f" (and {len(rest)} more: seq{'s' if len(rest) > 1 else ''} {shown})"


def _check_exported(chain: list[EventRow], manifest: bytes, report: PackageReport) -> None:
    """The chain must record this manifest's export for this release (its files, chain.json's head included)."""
    digest = hashlib.sha256(manifest).hexdigest()
    exports = [r for r in chain if r.kind == EXPORTED and r.release_id == report.release_id]
    match = [r for r in exports if _payload(r).get("manifest_sha256") == digest]
    if not match:
        report.problems.append(
            f"no {EXPORTED} event of release {report.release_id} in the chain has this {MANIFEST}'s sha256 "
            f"({digest[:16]}…; {len(exports)} export(s) recorded): files were changed after export, "
            "or the package comes from another store"
        )


def _payload(row: EventRow) -> dict[str, Any]:
    """An event's payload as a dict; empty when it is not a JSON object (a tampered row)."""
    return audit.payload_of(row)


def verify_package(
    directory: Path,
    *,
    key: str | None = None,
    chain: Iterable[EventRow] | None = None,
    head: tuple[int, str] | None = None,
) -> PackageReport:
    """Check the package in ``directory``: manifest, signature, file agreement, audit events and links.

    ``key`` checks (and, when set, requires) the manifest's HMAC. ``chain`` (every event of the
    audit chain, with the ``head`` the store records when it comes from a store) also checks the
    events against it. ``BadInput`` when ``directory`` is not a package.
    """
    report = PackageReport(directory)
    manifest = _check_manifest(directory, report)
    _check_signature(directory, manifest, key, report)
    release = _objects(
        _load_json(directory, "release.json", report), "release.json", ("release", "audit", "retrospective"), report
    )
    chain_doc = _objects(_load_json(directory, CHAIN, report), CHAIN, ("head",), report)
    report.release_id = (release.get("release") or {}).get("id")
    if chain_doc and chain_doc.get("release_id") != report.release_id:
        report.problems.append(
            f"{CHAIN} is for release {chain_doc.get('release_id')!r}, release.json for {report.release_id!r}"
        )
    _check_plan(directory, release, report)
    events = read_events(directory, report)
    _check_events(events, chain_doc, release, report)
    broken = (release.get("audit") or {}).get("chain_broken")
    if broken:
        # Written with `release export --broken-chain`: what it holds cannot be trusted, whatever else checks.
        detail = broken.get("detail") if isinstance(broken, dict) else None
        report.problems.append(
            "release.json: the package was exported from a broken audit chain"
            + (f" ({detail})" if isinstance(detail, str) else "")
        )
    records_from = len(report.problems)
    _check_record(directory, release, events, report)
    _check_tables(directory, events, report)
    _check_derived(directory, release, events, report)
    _check_retrospective(directory, events, release, report)
    if chain is not None:
        chain_from = len(report.problems)
        check_against_chain(events, chain, report, head=head, manifest=manifest)
        broken = [p for p in report.problems[chain_from:] if p.startswith(CHAIN_BROKEN)]
        if broken and records_from < chain_from:
            # A broken chain explains records that disagree with the events: say it before them.
            report.problems.remove(broken[0])
            report.problems.insert(records_from, broken[0])
    return report
