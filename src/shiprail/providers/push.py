"""The ``push`` provider: counts that apps, CI or people post to shiprail, read from the store.

A pushed count is one row of the ``signals`` table: a service, a name (``customer_complaint``,
``alert``, or a counter such as ``http_requests_total``), an optional version, a value above 0
and the time shiprail received it (from the injected ``Clock``). ``record_signal`` writes one, with
its audit event, in one transaction; ``shiprail signal`` is its command line.

A query sums the rows of one name received inside the window ``(now - window_s, now]`` — a row
exactly at the window's start is outside it, one at ``now`` inside — counting rows whose version
is the one asked for or that name no version (a customer complaint usually names none; one that
names another version is not about this one):

- ``error_rate`` / ``ratio``: Σ``errors`` / Σ``counter``, count = Σ``counter``; no ``counter``
  rows in the window → no data (with count 0);
- ``count``: Σ``counter``, count = the same; no rows → ``0`` with count 0, because pushed counts
  are events and no events is a count of zero (a trigger with ``min_samples`` stays inconclusive);
- ``rate``: Σ``counter`` / ``window_s`` per second, count = Σ``counter``; no rows → ``0``, count 0;
- ``gauge``: the latest ``gauge`` row's value; no rows → no data;
- ``latency``: the ``quantile`` of the ``histogram``'s bucket rows (rows with an upper bound
  ``le``): Σ per bound, made cumulative over the bounds, then interpolated linearly inside the
  bucket as Prometheus's ``histogram_quantile`` does (``common.bucket_quantile``, shared with the
  scrape provider), count = Σ observations; no observations → no data (with count 0).

The SDKs post their outcomes in batches (``POST /api/v1/sdk/{service}/metrics``, docs/flags.md);
``record_batch`` stores one as ``sdk_requests_total``, ``sdk_errors_total`` and the histogram
``sdk_latency_seconds`` (one row per non-empty bucket, its upper bound in ``le``). A batch's bounds
are ``defaults.LATENCY_BUCKETS`` and ``+Inf``, so a bucket without a row is known to be empty and
a quantile is what Prometheus would compute from the same observations.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from shiprail import defaults
from shiprail.clock import Clock
from shiprail.domain.contract import Sample
from shiprail.domain.states import Status
from shiprail.errors import BadInput
from shiprail.providers.common import bucket_quantile, one_line
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import Release, SignalEvent

# What a signal may be called: a word, then letters, digits and `_ : . -` (Prometheus names fit).
SIGNAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.-]*")
# The signals an SDK batch (``record_batch``) is stored as; the SDK API takes them only in batches.
SDK_OUTCOME_SIGNALS: frozenset[str] = frozenset(
    {defaults.SDK_REQUESTS_SIGNAL, defaults.SDK_ERRORS_SIGNAL, defaults.SDK_LATENCY_SIGNAL}
)
# The audit event every received signal appends.
AUDIT_KIND = "signal.received"
# Releases a signal is attributed to: those with traffic on the canary right now.
IN_PROGRESS: frozenset[Status] = frozenset({Status.ROLLING_OUT, Status.VERIFYING, Status.PAUSED, Status.ROLLING_BACK})
# Column widths of the signals table (longer values are refused rather than cut), and the longest
# note kept with a signal (it is copied into the audit event).
_MAX_LEN = {"service": 120, "version": defaults.MAX_VERSION_CHARS, "name": 200, "as": 120, "note": 4000, "key": 120}
# How check_signal names each input: the command line's arguments and flags, or the API's fields.
CLI_FIELDS: Mapping[str, str] = {
    "service": "SERVICE",
    "name": "NAME",
    "count": "--count",
    "version": "--version",
    "as": "--as",
    "note": "--note",
    "key": "--idempotency-key",
}
API_FIELDS: Mapping[str, str] = {key: f"`{key}`" for key in CLI_FIELDS} | {"key": "the Idempotency-Key header"}


@dataclass(frozen=True)
class SignalRecord:
    """One stored signal and the release it was attributed to."""

    id: int
    service: str
    version: str | None
    name: str
    value: float
    at: datetime
    actor: str
    note: str
    release_id: str | None
    replayed: bool = False  # an earlier signal returned for its idempotency key, not stored again

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, time as ISO 8601."""
        return {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "name": self.name,
            "value": self.value,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "note": self.note,
            "release_id": self.release_id,
        }


# ------------------------------------------------------------------------------------ recording


def _check_text(what: str, text: str, *, lines: bool = False) -> None:
    """``BadInput`` naming ``what`` when ``text`` cannot be stored as it is: not UTF-8, or control characters.

    ``lines``: line breaks and tabs are allowed (free text); other control characters never are.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{what} is not text (it holds a lone UTF-16 surrogate); send UTF-8") from None
    allowed = "\n\t\r" if lines else ""
    # Control characters only (category Cc): a non-breaking space or an emoji's zero-width joiner is text.
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text):
        raise BadInput(f"{what} holds a control character; send printable text")


def check_signal(
    *,
    service: str,
    name: str,
    value: float,
    version: str | None,
    actor: str,
    note: str = "",
    key: str | None = None,
    fields: Mapping[str, str] = CLI_FIELDS,
) -> None:
    """Raise ``BadInput`` (one sentence naming the input as ``fields`` calls it) when a signal cannot be stored."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{fields['count']} must be a number above 0, got {one_line(repr(value), 40)}")
    shown = f"{value:.15g}" if isinstance(value, float) else one_line(repr(value), 40)
    # An int is compared, never converted: one too large for a float compares exactly.
    if (isinstance(value, float) and not math.isfinite(value)) or not value > 0:
        raise BadInput(f"{fields['count']} must be a finite number above 0, got {shown}")
    if value > _MAX_COUNT:
        raise BadInput(f"{fields['count']} must be at most {_MAX_COUNT} (2**53), got {shown}")
    texts = {"service": service, "name": name, "version": version, "as": actor, "note": note, "key": key}
    for field, text in texts.items():
        if text is None:
            continue
        if len(text) > _MAX_LEN[field]:
            raise BadInput(f"{fields[field]} is {len(text)} characters long; at most {_MAX_LEN[field]} fit")
        _check_text(fields[field], text, lines=field == "note")
    if not SIGNAL_NAME.fullmatch(name):
        raise BadInput(
            f"{fields['name']} {name!r} is not a signal name; use a letter or _ first, "
            "then letters, digits, _ : . or - (e.g. customer_complaint)"
        )
    if not service.strip():
        raise BadInput(f"{fields['service']} is empty; name a service under services/")
    if version is not None and not version.strip():
        raise BadInput(f"{fields['version']} is empty; leave it out when the signal is not about one version")
    if version is not None and version != version.strip():
        raise BadInput(f"{fields['version']} {version!r} has spaces around it; send the version as it is deployed")
    if not actor.strip():
        raise BadInput(f"{fields['as']} is empty; say who or what sent the signal")
    if key is not None and not key.strip():
        raise BadInput(f"{fields['key']} is empty; send a key of your own per signal, the same on a retry")


def release_in_progress(session: Session, service: str) -> str | None:
    """The id of ``service``'s release in progress (the newest if several), or None."""
    query = (
        select(Release.id)
        .where(Release.service == service, Release.status.in_([s.value for s in IN_PROGRESS]))
        .order_by(Release.created_at.desc(), Release.id.desc())
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none()


def record_signal(
    store: Store,
    clock: Clock,
    *,
    service: str,
    name: str,
    value: float = 1.0,
    version: str | None = None,
    actor: str,
    note: str = "",
    key: str | None = None,
    fields: Mapping[str, str] = CLI_FIELDS,
) -> SignalRecord:
    """Store one pushed count and its ``signal.received`` audit event in one transaction.

    The event names the service's release in progress (rolling out, verifying, paused or rolling
    back; the newest if several), or no release. Bad input raises ``BadInput`` and stores nothing.
    ``key``: the sender's idempotency key. A signal already stored under it for this service is
    returned as it is (``replayed``), with no second row and no second audit event; the same key
    with another signal is ``BadInput``.
    """
    check_signal(
        service=service, name=name, value=value, version=version, actor=actor, note=note, key=key, fields=fields
    )
    value = float(value)
    at = clock.now()
    for attempt in range(2):
        try:
            with store.transaction() as session:
                release_id = release_in_progress(session, service)
                if key is not None:
                    stored = _stored_under(session, service, key)
                    if stored is not None:
                        _same_signal(stored, name, value, version, key, fields)
                        return _record(stored, release_id, replayed=True)
                row = SignalEvent(
                    service=service,
                    version=version,
                    name=name,
                    value=value,
                    at=at,
                    actor=actor,
                    note=note,
                    idempotency_key=key,
                )
                session.add(row)
                session.flush()
                payload = {"signal_id": row.id, "service": service, "version": version, "name": name, "value": value}
                if note:
                    payload["note"] = note
                audit.append(session, at=at, actor=actor, kind=AUDIT_KIND, release_id=release_id, payload=payload)
                return _record(row, release_id)
        except IntegrityError:
            # The same key stored by a concurrent retry a moment ago: the next attempt returns it.
            if attempt or key is None:
                raise
    raise AssertionError("unreachable")


def _stored_under(session: Session, service: str, key: str) -> SignalEvent | None:
    query = select(SignalEvent).where(SignalEvent.service == service, SignalEvent.idempotency_key == key)
    return session.execute(query).scalar_one_or_none()


def _same_signal(
    stored: SignalEvent, name: str, value: float, version: str | None, key: str, fields: Mapping[str, str]
) -> None:
    if (stored.name, stored.value, stored.version) != (name, value, version):
        raise BadInput(
            f"{fields['key']} {key!r} was used for another signal ({stored.name} ×{stored.value:g}); "
            "use a new key for a new signal"
        )


def _same_batch(stored: SignalEvent, first: Mapping[str, Any], key: str) -> None:
    """BadInput unless ``stored`` (the row under ``key``) is the first row of this very batch: a retry."""
    ours = (first["name"], first["version"], first["value"], first["actor"], first["le"])
    if (stored.name, stored.version, stored.value, stored.actor, stored.le) != ours:
        raise BadInput(
            f"the Idempotency-Key header {key!r} was used for another batch or signal; "
            "use a new key for each batch, the same one only to send it again"
        )


def _record(row: SignalEvent, release_id: str | None, *, replayed: bool = False) -> SignalRecord:
    return SignalRecord(
        row.id, row.service, row.version, row.name, row.value, row.at, row.actor, row.note, release_id, replayed
    )


# ------------------------------------------------------------------------------- SDK batches

# What a batch's actor is called: the SDK instance that sent it.
SDK_ACTOR_PREFIX = "sdk:"
# The fields of one version's outcomes in a batch.
_BATCH_FIELDS = ("requests", "errors", "latency")
# The upper bounds a batch's latency buckets may have (seconds), +Inf last.
HISTOGRAM_BOUNDS: tuple[float, ...] = (*sorted(defaults.LATENCY_BUCKETS), math.inf)
# Counts above this are no longer exact as floats (the signals table stores floats).
_MAX_COUNT = 2**53
# How a finite bucket bound is written: a decimal number, as JSON writes one (ASCII digits: \d
# alone also matches other scripts' digits, which float() reads).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _quoted(text: str) -> str:
    """``text`` as a JSON string for a message, cut when long: ``"2.0.0"``."""
    cut = text if len(text) <= 60 else text[:59] + "…"
    shown = json.dumps(cut, ensure_ascii=False)
    try:
        shown.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows "\ud800"): escaped, or the refusal naming it could not be
        # sent as UTF-8 and serve would answer 500 instead of the 422 that says what is wrong.
        shown = json.dumps(cut)
    return shown


def _count(value: object, where: str) -> int:
    """``value`` as a count (a whole number ≥ 0), or ``BadInput`` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = one_line(repr(value), 40)
        raise BadInput(f"{where}: a count must be a whole number of at least 0, got {shown}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise BadInput(f"{where}: a count must be a whole number of at least 0, got {value!r}")
    if value < 0:
        raise BadInput(f"{where}: a count must be a whole number of at least 0, got {value!r}")
    if value > _MAX_COUNT:
        raise BadInput(f"{where}: a count must be at most {_MAX_COUNT}, got {one_line(repr(value), 40)}")
    return int(value)


def _bound(key: object, where: str) -> float:
    """A latency bucket's key (``"0.005"``, ``"+Inf"``) as its upper bound, or ``BadInput``."""
    if not isinstance(key, str):
        raise BadInput(f'{where}: a bucket bound must be a number or "+Inf", got {one_line(repr(key), 40)}')
    if key.lower() in ("+inf", "inf"):
        return math.inf
    if not _NUMBER.fullmatch(key):
        raise BadInput(f'{where}: a bucket bound must be a number or "+Inf"')
    bound = float(key)
    if math.isinf(bound):  # "1e999" overflows: a number, but not the +Inf bucket
        raise BadInput(f'{where}: {one_line(key, 40)} is not a bucket bound; write the last one "+Inf"')
    if bound not in HISTOGRAM_BOUNDS:
        known = ", ".join(f"{b:g}" for b in HISTOGRAM_BOUNDS[:-1])
        raise BadInput(f'{where}: {bound:g} is not a bucket bound; the buckets end at {known} and "+Inf"')
    return bound


@dataclass(frozen=True)
class VersionOutcomes:
    """One version's outcomes in a checked batch: counts, and observations per bucket bound."""

    version: str
    requests: int
    errors: int
    latency: Mapping[float, int]


def check_batch(*, service: str, client: str, versions: object) -> list[VersionOutcomes]:
    """The batch checked and parsed; ``BadInput`` (one sentence naming the field) when it is malformed.

    ``versions`` maps each version to ``{"requests": n, "errors": n, "latency": {bound: n}}``:
    ``requests`` is required, ``errors`` (at most ``requests``) and ``latency`` are optional; each
    count is a whole number ≥ 0; a bucket's bound is one of ``defaults.LATENCY_BUCKETS`` or
    ``"+Inf"`` (written as any number: ``"1"`` and ``"1.0"`` are the same bucket, given once).
    """
    if not service.strip():
        raise BadInput("service is empty; name a service under services/")
    if len(service) > _MAX_LEN["service"]:
        raise BadInput(f"service is {len(service)} characters long; at most {_MAX_LEN['service']} fit")
    if not client.strip():
        raise BadInput("client is empty; send the SDK instance's id")
    _check_text("client", client)
    longest = _MAX_LEN["as"] - len(SDK_ACTOR_PREFIX)
    if len(client) > longest:
        raise BadInput(f"client is {len(client)} characters long; at most {longest} fit")
    if not isinstance(versions, Mapping):
        raise BadInput(f"versions: must be an object of version → outcomes, got {type(versions).__name__}")
    if len(versions) > defaults.PUSH_BATCH_MAX_VERSIONS:
        raise BadInput(
            f"versions: a batch holds at most {defaults.PUSH_BATCH_MAX_VERSIONS} versions, got {len(versions)}; "
            "an SDK reports the versions it served"
        )
    out: list[VersionOutcomes] = []
    for version, outcomes in versions.items():
        if not isinstance(version, str):
            raise BadInput(f"versions: a version must be a string, got {one_line(repr(version), 40)}")
        here = f"versions[{_quoted(version)}]"
        if not version.strip():
            raise BadInput(f"{here}: the version is empty")
        _check_text(f"{here}: the version", version)
        if version != version.strip():
            raise BadInput(f"{here}: the version has spaces around it; send it as it is deployed")
        if len(version) > _MAX_LEN["version"]:
            most = _MAX_LEN["version"]
            raise BadInput(f"{here}: the version is {len(version)} characters long; at most {most} fit")
        if not isinstance(outcomes, Mapping):
            got = type(outcomes).__name__
            raise BadInput(f"{here}: must be an object with requests, errors and latency, got {got}")
        unknown = [key for key in outcomes if key not in _BATCH_FIELDS]
        if unknown:
            field = _quoted(str(unknown[0]))
            raise BadInput(f"{here}: unknown field {field}; the fields are requests, errors and latency")
        if "requests" not in outcomes:
            raise BadInput(f"{here}.requests is missing; send the number of requests (0 for none)")
        requests = _count(outcomes["requests"], f"{here}.requests")
        errors = _count(outcomes.get("errors", 0), f"{here}.errors")
        if errors > requests:
            raise BadInput(f"{here}.errors: {errors} errors is more than the {requests} requests")
        buckets = outcomes.get("latency", {})
        if not isinstance(buckets, Mapping):
            got = type(buckets).__name__
            raise BadInput(f"{here}.latency: must be an object of bucket bound → count, got {got}")
        latency: dict[float, int] = {}
        keys: dict[float, str] = {}
        for key, value in buckets.items():
            where = f"{here}.latency[{_quoted(str(key))}]"
            bound = _bound(key, where)
            if bound in keys:
                raise BadInput(f"{where}: the same bucket as {_quoted(keys[bound])}; give each bucket once")
            keys[bound] = str(key)
            latency[bound] = _count(value, where)
        timed = sum(latency.values())
        if timed > requests:
            # Each latency is one request's: more of them than requests would let a sender move the
            # latency quantiles at will.
            raise BadInput(f"{here}.latency: its buckets count {timed} requests, more than the {requests} requests")
        out.append(VersionOutcomes(version, requests, errors, latency))
    return out


def record_batch(
    store: Store, clock: Clock, *, service: str, client: str, versions: Mapping[str, Any], key: str | None = None
) -> int:
    """Store one SDK metrics batch (``POST /api/v1/sdk/{service}/metrics``) as pushed signals.

    Per version: a ``sdk_requests_total`` row (``requests``), a ``sdk_errors_total`` row
    (``errors``) and one ``sdk_latency_seconds`` row per non-empty bucket, its upper bound in
    ``le`` (``inf`` for ``"+Inf"``). A count of 0 stores no row: the reader takes no errors rows as
    0 errors and no requests rows as no data, which is what a batch without requests means. Every
    row has the actor ``sdk:<client>`` and the same time, ``clock.now()``, and all are stored in one
    transaction, so a window holds a batch's requests and errors together or not at all.

    Unlike ``record_signal``, a batch appends **no audit event**: metric batches are observations,
    posted every second by every SDK; the analyses that read them are audited.

    The whole batch is checked first (``check_batch``); a malformed one raises ``BadInput`` naming
    the field and stores nothing. Returns the number of rows stored.

    ``key``: the sender's idempotency key for this batch (the ``Idempotency-Key`` header), kept on
    the batch's first row, in the same per-service namespace as ``record_signal``'s keys. A batch
    already stored under it is not stored again (0 rows): an SDK that re-sends a batch whose answer
    it never got (a timeout after the commit) does not count its requests twice. A key already used
    for another batch or a signal raises ``BadInput`` rather than dropping this batch unseen.
    """
    checked = check_batch(service=service, client=client, versions=versions)
    if key is not None:
        if not key.strip():
            raise BadInput("the Idempotency-Key header is empty; send a key of your own per batch, the same on a retry")
        if len(key) > _MAX_LEN["key"]:
            raise BadInput(f"the Idempotency-Key header is {len(key)} characters long; at most {_MAX_LEN['key']} fit")
        _check_text("the Idempotency-Key header", key)
    at = clock.now()
    actor = f"{SDK_ACTOR_PREFIX}{client}"

    def row(version: str, name: str, value: int, le: float | None = None) -> dict[str, Any]:
        return {
            "service": service,
            "version": version,
            "name": name,
            "value": float(value),
            "at": at,
            "actor": actor,
            "note": "",
            "le": le,
        }

    rows: list[dict[str, Any]] = []
    for one in checked:
        if one.requests > 0:
            rows.append(row(one.version, defaults.SDK_REQUESTS_SIGNAL, one.requests))
        if one.errors > 0:
            rows.append(row(one.version, defaults.SDK_ERRORS_SIGNAL, one.errors))
        for bound in sorted(one.latency):
            if one.latency[bound] > 0:
                rows.append(row(one.version, defaults.SDK_LATENCY_SIGNAL, one.latency[bound], bound))
    if not rows:
        return 0
    rows[0]["idempotency_key"] = key
    for attempt in range(2):
        try:
            with store.transaction() as session:
                stored = None if key is None else _stored_under(session, service, key)
                if stored is not None and key is not None:
                    _same_batch(stored, rows[0], key)
                    return 0  # a retry of a batch already stored
                session.execute(insert(SignalEvent), rows)
            return len(rows)
        except IntegrityError:
            # The same key stored by a concurrent retry a moment ago: the next attempt sees it.
            if attempt or key is None:
                raise
    raise AssertionError("unreachable")


# -------------------------------------------------------------------------------------- reading


def _where(
    service: str, names: Iterable[str], since: datetime, until: datetime, version: str | None
) -> list[ColumnElement[bool]]:
    """The WHERE clauses picking ``names``' rows for ``version`` received inside ``(since, until]``."""
    where = [
        SignalEvent.service == service,
        SignalEvent.name.in_(sorted(set(names))),
        SignalEvent.at > since,
        SignalEvent.at <= until,
    ]
    if version is not None:
        where.append(or_(SignalEvent.version.is_(None), SignalEvent.version == version))
    return where


def sum_signals(
    session: Session,
    *,
    service: str,
    names: Iterable[str],
    since: datetime,
    until: datetime,
    version: str | None = None,
) -> dict[str, float]:
    """Σ value per name of ``names`` (0 for a name with no rows), read in the caller's transaction.

    Rows received in ``(since, until]`` count. With ``version``, rows naming that version or no
    version count; without, every row does.
    """
    wanted = list(dict.fromkeys(names))
    query = (
        select(SignalEvent.name, func.sum(SignalEvent.value))
        .where(*_where(service, wanted, since, until, version))
        .group_by(SignalEvent.name)
    )
    found = {name: float(total) for name, total in session.execute(query).all()}
    return {name: found.get(name, 0.0) for name in wanted}


def count_signals(
    store: Store,
    *,
    service: str,
    name: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
) -> float:
    """Σ value of ``service``'s ``name`` rows received in ``(since, until]``; 0 when there are none.

    With ``version``, rows naming that version or no version count (a complaint usually names no
    version; one naming another version is not about this one); without, every row does.
    """
    with store.transaction() as session:
        sums = sum_signals(session, service=service, names=[name], since=since, until=until, version=version)
    return sums[name]


def latest_signal(
    session: Session,
    *,
    service: str,
    name: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
) -> float | None:
    """The value of the last ``name`` row received in ``(since, until]`` (rows as ``sum_signals``), or None."""
    query = (
        select(SignalEvent.value)
        .where(*_where(service, [name], since, until, version))
        .order_by(SignalEvent.at.desc(), SignalEvent.id.desc())
        .limit(1)
    )
    found = session.execute(query).scalar_one_or_none()
    return None if found is None else float(found)


def histogram_buckets(
    session: Session,
    *,
    service: str,
    name: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
) -> dict[float, float]:
    """Σ value per upper bound ``le`` of the ``name`` histogram's rows (rows as ``sum_signals``).

    Per-bucket counts, not cumulative; a bound without rows is left out. Rows without ``le``
    (plain counts that happen to share the name) are not buckets and do not count.
    """
    query = (
        select(SignalEvent.le, func.sum(SignalEvent.value))
        .where(*_where(service, [name], since, until, version), SignalEvent.le.is_not(None))
        .group_by(SignalEvent.le)
    )
    found: dict[float, float] = {}
    for le, total in session.execute(query).all():
        if le is not None:  # excluded by the query; this tells the type checker
            found[float(le)] = float(total)
    return found


def quantile_sample(q: float, buckets: Mapping[float, float]) -> Sample:
    """The ``q`` quantile of per-bucket counts by upper bound, count = Σ observations.

    The bounds are ``HISTOGRAM_BOUNDS`` (the SDK's) and any others the rows name: a bound without
    observations is an empty bucket, as Prometheus would expose it. No observations → no data.
    """
    observations = math.fsum(buckets.values())
    cumulative: list[tuple[float, float]] = []
    running = 0.0
    for bound in sorted({*HISTOGRAM_BOUNDS, *buckets}):
        running += buckets.get(bound, 0.0)
        cumulative.append((bound, running))
    if observations <= 0:
        return Sample(None, 0.0, buckets=tuple(cumulative))
    return Sample(bucket_quantile(q, cumulative), observations, buckets=tuple(cumulative))


# ------------------------------------------------------------------------------------- provider

_NEEDS: Mapping[str, tuple[str, ...]] = {
    "error_rate": ("counter", "errors"),
    "ratio": ("counter", "errors"),
    "count": ("counter",),
    "rate": ("counter",),
    "gauge": ("gauge",),
    "latency": ("histogram", "quantile"),
}


def check_metric(name: str, metric: Metric) -> str | None:
    """Why the push provider cannot compute ``metric`` (named ``name``), or None when it can."""
    for field in _NEEDS.get(metric.kind, ()):
        if field == "quantile":
            if metric.quantile is None:
                return (
                    f"metric {name!r} of kind latency has no `quantile`; the push provider needs the "
                    "quantile to report, between 0 and 1 (0.99 for p99)"
                )
        elif not getattr(metric, field):
            what = "histogram" if field == "histogram" else "signal"
            return (
                f"metric {name!r} of kind {metric.kind} has no `{field}`; the push provider needs "
                f"`{field}` to name the pushed {what} it reads"
            )
    if metric.kind not in _NEEDS:
        return f"metric {name!r}: the push provider cannot compute a {metric.kind} metric"
    return None


def _named(value: str | None) -> str:
    assert value  # checked by check_metric
    return value


class PushProvider:
    """Computes a service's metrics from the counts pushed to the store for it."""

    def __init__(self, store: Store, clock: Clock, service: str) -> None:
        self.store = store
        self.clock = clock
        self.service = service

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        problem = check_metric(name, metric)
        if problem:
            return Sample.failed(problem)
        if window_s <= 0:
            return Sample.failed(f"metric {name!r}: the window must be longer than 0 seconds, got {window_s}")
        until = self.clock.now()
        since = until - timedelta(seconds=window_s)
        try:
            return self._compute(metric, version, since, until, window_s)
        except SQLAlchemyError as exc:
            return Sample.failed(f"cannot read the pushed signals from the store: {one_line(str(exc), 160)}")

    def _compute(self, metric: Metric, version: str, since: datetime, until: datetime, window_s: int) -> Sample:
        # One transaction: the errors and the total of an error rate are read at the same moment.
        with self.store.transaction() as session:
            if metric.kind == "gauge":
                gauge = _named(metric.gauge)
                value = latest_signal(
                    session, service=self.service, name=gauge, since=since, until=until, version=version
                )
                return Sample(value)
            if metric.kind == "latency":
                assert metric.quantile is not None  # checked by check_metric
                buckets = histogram_buckets(
                    session,
                    service=self.service,
                    name=_named(metric.histogram),
                    since=since,
                    until=until,
                    version=version,
                )
                return quantile_sample(metric.quantile, buckets)
            counter = _named(metric.counter)
            names = [counter, _named(metric.errors)] if metric.kind in ("error_rate", "ratio") else [counter]
            sums = sum_signals(session, service=self.service, names=names, since=since, until=until, version=version)
        total = sums[counter]
        if metric.kind == "count":
            return Sample(total, total)
        if metric.kind == "rate":
            return Sample(total / window_s, total)
        # error_rate, ratio: no requests in the window is no data, not a rate of 0.
        if total <= 0:
            return Sample(None, 0.0)
        return Sample(sums[_named(metric.errors)] / total, total)
