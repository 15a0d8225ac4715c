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
- ``latency``: failed; pushed counts carry no histograms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shiprail.clock import Clock
from shiprail.domain.contract import Sample
from shiprail.domain.states import Status
from shiprail.errors import BadInput
from shiprail.providers.common import one_line
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import Release, SignalEvent

# What a signal may be called: a word, then letters, digits and `_ : . -` (Prometheus names fit).
SIGNAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.-]*")
# The audit event every received signal appends.
AUDIT_KIND = "signal.received"
# Releases a signal is attributed to: those with traffic on the canary right now.
IN_PROGRESS: frozenset[Status] = frozenset({Status.ROLLING_OUT, Status.VERIFYING, Status.PAUSED, Status.ROLLING_BACK})
# Column widths of the signals table (longer values are refused rather than cut).
_MAX_LEN = {"SERVICE": 120, "--version": 120, "NAME": 200, "--as": 120}


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


def check_signal(*, service: str, name: str, value: float, version: str | None, actor: str) -> None:
    """Raise ``BadInput`` (one sentence naming the flag or argument) when a signal cannot be stored."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"--count must be a number above 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"--count must be a finite number above 0, got {value:.15g}")
    if not SIGNAL_NAME.fullmatch(name):
        raise BadInput(
            f"NAME {name!r} is not a signal name; use a letter or _ first, then letters, digits, _ : . or - "
            "(e.g. customer_complaint)"
        )
    if not service.strip():
        raise BadInput("SERVICE is empty; name a service under services/")
    if version is not None and not version.strip():
        raise BadInput("--version is empty; leave it out when the signal is not about one version")
    if not actor.strip():
        raise BadInput("--as is empty; say who or what sent the signal")
    for what, text in (("SERVICE", service), ("NAME", name), ("--version", version), ("--as", actor)):
        if text is not None and len(text) > _MAX_LEN[what]:
            raise BadInput(f"{what} is {len(text)} characters long; at most {_MAX_LEN[what]} fit")


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
) -> SignalRecord:
    """Store one pushed count and its ``signal.received`` audit event in one transaction.

    The event names the service's release in progress (rolling out, verifying, paused or rolling
    back; the newest if several), or no release. Bad input raises ``BadInput`` and stores nothing.
    """
    check_signal(service=service, name=name, value=value, version=version, actor=actor)
    value = float(value)
    at = clock.now()
    with store.transaction() as session:
        release_id = release_in_progress(session, service)
        row = SignalEvent(service=service, version=version, name=name, value=value, at=at, actor=actor, note=note)
        session.add(row)
        session.flush()
        payload = {"signal_id": row.id, "service": service, "version": version, "name": name, "value": value}
        if note:
            payload["note"] = note
        audit.append(session, at=at, actor=actor, kind=AUDIT_KIND, release_id=release_id, payload=payload)
        return SignalRecord(row.id, service, version, name, value, at, actor, note, release_id)


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


# ------------------------------------------------------------------------------------- provider

_NEEDS: Mapping[str, tuple[str, ...]] = {
    "error_rate": ("counter", "errors"),
    "ratio": ("counter", "errors"),
    "count": ("counter",),
    "rate": ("counter",),
    "gauge": ("gauge",),
}
LATENCY = "the push provider takes no latency histograms yet; use prometheus or scrape for latency"


def check_metric(name: str, metric: Metric) -> str | None:
    """Why the push provider cannot compute ``metric`` (named ``name``), or None when it can."""
    if metric.kind == "latency":
        return LATENCY
    for field in _NEEDS.get(metric.kind, ()):
        if not getattr(metric, field):
            return (
                f"metric {name!r} of kind {metric.kind} has no `{field}`; the push provider needs "
                f"`{field}` to name the pushed signal it reads"
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
