"""The flag router's state: the rollout config published per service, and the SDKs in contact.

The router writes configs (``publish``); ``shiprail serve`` reads them for SDKs (``read``,
``revisions``) and writes which revision each SDK says it applies (``record_contacts``); the router
reads those acknowledgements back (``contacts``) to confirm a weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shiprail.store.db import Store
from shiprail.store.models import FlagClient, FlagConfig


@dataclass(frozen=True)
class Published:
    """One service's rollout config as SDKs receive it."""

    service: str
    revision: int
    release: str | None
    stable: str | None
    canary: str | None
    weight: float
    salt: str

    @classmethod
    def empty(cls, service: str) -> Published:
        """What a service with nothing published answers: revision 0, everyone on stable."""
        return cls(service, 0, None, None, None, 0.0, service)

    def to_json(self) -> dict[str, Any]:
        """The JSON body SDKs fetch."""
        return asdict(self)

    @property
    def etag(self) -> str:
        """The HTTP entity tag of this revision."""
        return f'"{self.revision}"'


@dataclass(frozen=True)
class Contact:
    """An SDK instance, the revision it last acknowledged and when it was last seen."""

    client: str
    revision: int
    last_seen: datetime


def _published(row: FlagConfig) -> Published:
    return Published(row.service, row.revision, row.release_id, row.stable, row.canary, row.weight, row.salt)


def publish(
    store: Store,
    *,
    service: str,
    release: str | None,
    stable: str | None,
    canary: str | None,
    weight: float,
    salt: str,
    at: datetime,
) -> Published:
    """Make ``weight`` (and the versions and salt) the service's config; raise the revision on a change.

    Publishing what is already published changes nothing (same revision), so a retried
    ``set_weight`` is harmless.
    """
    for attempt in range(2):
        try:
            with store.transaction() as s:
                row = s.get(FlagConfig, service, with_for_update=True)
                wanted = (release, stable, canary, float(weight), salt)
                if row is None:
                    row = FlagConfig(service=service, revision=0, weight=0.0, salt=salt, updated_at=at)
                    s.add(row)
                elif (row.release_id, row.stable, row.canary, row.weight, row.salt) == wanted:
                    return _published(row)
                row.revision += 1
                row.release_id, row.stable, row.canary, row.weight, row.salt = wanted
                row.updated_at = at
                s.flush()
                return _published(row)
        except IntegrityError:
            # Two publishers created the first row at once; the loser reads the winner's row.
            if attempt:
                raise
    raise AssertionError("unreachable")


def read(session: Session, service: str) -> Published:
    """The service's published config, or the empty one."""
    row = session.get(FlagConfig, service)
    return Published.empty(service) if row is None else _published(row)


def read_all(session: Session, services: Iterable[str]) -> dict[str, Published]:
    """The published configs of ``services`` (empty ones for services with none)."""
    wanted = sorted(set(services))
    found = {
        row.service: _published(row)
        for row in session.scalars(select(FlagConfig).where(FlagConfig.service.in_(wanted)))
    }
    return {name: found.get(name, Published.empty(name)) for name in wanted}


def revisions(session: Session) -> dict[str, int]:
    """Every service's current revision: the cheap query serve polls to notice other processes' changes."""
    return {service: revision for service, revision in session.execute(select(FlagConfig.service, FlagConfig.revision))}


def record_contacts(session: Session, seen: Iterable[tuple[str, str, int, datetime]]) -> None:
    """Store (service, client, revision, last seen) for each SDK heard from, newest wins.

    The rows are locked in (service, client) order: two serve instances that heard the same SDKs
    in different orders would otherwise each lock one the other waits for (PostgreSQL: deadlock).
    """
    for service, client, revision, last_seen in sorted(seen, key=lambda contact: (contact[0], contact[1])):
        row = session.get(FlagClient, (service, client), with_for_update=True)
        if row is None:
            session.add(FlagClient(service=service, client=client, revision=revision, last_seen=last_seen))
        elif last_seen >= row.last_seen:
            row.revision, row.last_seen = revision, last_seen


def forget_client(session: Session, service: str, client: str) -> None:
    """Delete one SDK's contact (it said it is closing)."""
    session.execute(delete(FlagClient).where(FlagClient.service == service, FlagClient.client == client))


def forget_clients(session: Session, before: datetime) -> int:
    """Delete the SDKs last heard from before ``before`` (any service); how many were deleted."""
    result = session.execute(delete(FlagClient).where(FlagClient.last_seen < before))
    return int(getattr(result, "rowcount", 0) or 0)


def contacts(session: Session, service: str, since: datetime) -> list[Contact]:
    """The service's SDKs seen at or after ``since``, by client id."""
    rows = session.scalars(
        select(FlagClient)
        .where(FlagClient.service == service, FlagClient.last_seen >= since)
        .order_by(FlagClient.client)
    )
    return [Contact(row.client, row.revision, row.last_seen) for row in rows]
