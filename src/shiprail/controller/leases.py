"""Which controller drives a release: a lease in the store, renewed while its holder lives.

Two controllers on one store (a ``shiprail controller`` and a ``release start --wait``, or two
replicas) never drive the same release at once. A holder that dies stops renewing and its lease
expires; on the same host, a holder whose process is gone is replaced at once.

Leases are timed by the database's clock (``lease_clock``), the one clock every controller host
shares: a host whose own clock is minutes off would otherwise see a live controller's lease as
long over and take its releases (two controllers then drive one release), or write leases that
outlive it by minutes.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from shiprail import defaults
from shiprail.clock import Clock, WallClock
from shiprail.store.db import Store, first_line
from shiprail.store.models import ControllerPresence, Lease
from shiprail.text import is_digits

log = logging.getLogger(__name__)


def _scope() -> str:
    """Where a PID means one process: this host, this boot, this PID namespace.

    Containers sharing a host name have PID namespaces of their own, so a PID is only compared
    with a holder's when the whole scope matches.
    """

    def read(path: str, link: bool = False) -> str:
        try:
            return os.readlink(path) if link else open(path).read().strip()
        except OSError:
            return "?"

    boot = read("/proc/sys/kernel/random/boot_id")[:8]
    pidns = read("/proc/self/ns/pid", link=True).removeprefix("pid:[").removesuffix("]")
    return f"{socket.gethostname()}/{boot}/{pidns}"


class DatabaseClock:
    """The database server's clock, the authority on leases: every controller host reads the same one.

    Read once every ``LEASE_CLOCK_RESYNC_SECONDS`` (a round trip) and carried forward on this host's
    monotonic clock in between, which an NTP step of the host's wall clock does not move. A read
    that fails (the store away) keeps the last one, carried forward; the first read's failure
    raises, as the store's other errors do.
    """

    def __init__(self, store: Store, *, resync_s: float = defaults.LEASE_CLOCK_RESYNC_SECONDS) -> None:
        self.store, self.resync_s = store, resync_s
        self._base: tuple[datetime, float] | None = None  # the database's time, and monotonic() when read
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            base, tick = self._base, time.monotonic()
            if base is None or tick - base[1] >= self.resync_s:
                try:
                    with self.store.transaction() as s:
                        # clock_timestamp(), not now(): the time of the read, not of the transaction's start.
                        read = s.execute(select(func.clock_timestamp())).scalar_one()
                    base = self._base = (read, time.monotonic())
                except SQLAlchemyError:
                    if base is None:
                        raise
            return base[0] + timedelta(seconds=time.monotonic() - base[1])

    def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            time.sleep(delay)


def lease_clock(store: Store, clock: Clock) -> Clock:
    """The clock leases and the running controllers are timed by on ``store``, for a process on ``clock``.

    PostgreSQL, read by hosts whose clocks may disagree: its own clock, when the process runs on the
    wall clock. A SQLite file has one host, whose clock all its processes share; and a simulated
    clock is the whole world's time in a test.
    """
    return DatabaseClock(store) if store.dialect == "postgresql" and isinstance(clock, WallClock) else clock


def now_in(session: Session, clock: Clock) -> datetime:
    """The time by the clock leases are timed by (``lease_clock``), read within ``session``: for a
    process that looks at the leases once (``release show``), not one that renews them."""
    if session.get_bind().dialect.name == "postgresql" and isinstance(clock, WallClock):
        read: datetime = session.execute(select(func.clock_timestamp())).scalar_one()
        return read
    return clock.now()


def new_holder() -> str:
    """A name for this controller: where it runs, its process and a random token."""
    return f"{_scope()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_gone(holder: str) -> bool:
    """Whether ``holder`` was a process in this PID scope that no longer runs."""
    scope, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if scope != _scope() or "?" in scope or not is_digits(pid_text):
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie still answers kill(pid, 0); it drives nothing.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def acquire(store: Store, release_id: str, holder: str, now: datetime, ttl_s: float) -> bool:
    """Take or renew the lease on ``release_id``; False when another live controller holds it.

    The row is claimed with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL): while another controller has
    it locked — renewing it, or writing an outcome under it (``held_by``) — this one moves on to
    its next release instead of queueing behind it; that other controller is alive, so the lease
    is not free anyway. SQLite has no row locks and serialises the transaction instead.
    """
    try:
        with store.transaction() as s:
            lease = s.execute(
                select(Lease).where(Lease.release_id == release_id).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            until = now + timedelta(seconds=ttl_s)
            if lease is None:
                if s.execute(select(Lease.release_id).where(Lease.release_id == release_id)).first() is not None:
                    return False  # there is a lease, locked by its live holder
                s.add(Lease(release_id=release_id, holder=holder, expires_at=until))
                s.flush()
                return True
            if lease.holder != holder and lease.calls_until is not None and lease.calls_until > now:
                # Its holder started a router call that may still land (a dead controller's
                # script runs on to its timeout): whoever acted on the router now could be undone.
                return False
            if lease.holder == holder or lease.expires_at <= now or process_gone(lease.holder):
                lease.holder, lease.expires_at, lease.calls_until = holder, until, None
                return True
            return False
    except IntegrityError:
        # Two controllers inserted the first lease at once (PostgreSQL locks no missing row):
        # the other one won.
        return False


def fence(store: Store, release_id: str, holder: str, until: datetime | None) -> bool:
    """Mark (or with ``None`` clear) until when a router call of ``holder`` may land; False if not its lease.

    A controller killed mid-call cannot clear its mark: the release then waits for the mark to
    pass before anyone takes it over, by which time the call has ended or been killed at its
    timeout (the command router's script is killed then even without its controller).
    """
    with store.transaction() as s:
        lease = s.get(Lease, release_id, with_for_update=True)
        if lease is None or lease.holder != holder:
            return False
        lease.calls_until = until
        return True


def renew(store: Store, release_id: str, holder: str, now: datetime, ttl_s: float) -> bool:
    """Extend the lease ``holder`` holds; False when it is another's now (never takes it back)."""
    with store.transaction() as s:
        lease = s.get(Lease, release_id, with_for_update=True)
        if lease is None or lease.holder != holder:
            return False
        lease.expires_at = max(lease.expires_at, now + timedelta(seconds=ttl_s))
        return True


class Heartbeat:
    """Keeps a lease renewed from a thread while its holder waits on one slow call.

    Without it a router call longer than the lease (an nginx reload may take up to its 60 s
    timeout) lets another controller take the release over and apply its weight, and then the old
    call lands on top of it. Renewing stops at ``deadline`` (the call's own timeout plus a margin):
    a call hung past it cannot keep the release from everyone; the lease then runs out as usual.
    The heartbeat only renews, never takes a lease back, so a holder that lost it stays out.
    """

    def __init__(
        self,
        store: Store,
        release_id: str,
        holder: str,
        clock: Clock,
        *,
        ttl_s: float,
        every_s: float,
        deadline: datetime,
        fenced: bool = False,
    ) -> None:
        """``fenced``: the work is a router call, whose deadline is marked on the lease while it runs."""
        self.store, self.release_id, self.holder, self.clock = store, release_id, holder, clock
        self.ttl_s, self.every_s, self.deadline = ttl_s, every_s, deadline
        self.fenced = fenced
        self.beats = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"shiprail-lease-{release_id}", daemon=True)

    def _run(self) -> None:
        # The wait is in real time: the heartbeat exists for calls that take real time.
        while not self._done.wait(self.every_s):
            now = self.clock.now()
            if now >= self.deadline:
                log.warning("%s: a router call outlasted its timeout; the lease is no longer renewed", self.release_id)
                return
            try:
                if not renew(self.store, self.release_id, self.holder, now, self.ttl_s):
                    return
            except Exception as exc:  # the store is away: try again at the next beat, while the lease lasts
                log.warning("%s: cannot renew the lease: %s", self.release_id, _why(exc))
                continue
            self.beats += 1

    def __enter__(self) -> Heartbeat:
        if self.fenced:
            # Not held (another controller took over): the call goes ahead unfenced, and the
            # outcome is recorded as stale (the router put right by the holder), as before.
            fence(self.store, self.release_id, self.holder, self.deadline)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()
        if self.fenced:
            try:
                fence(self.store, self.release_id, self.holder, None)
            except Exception as exc:  # the store is away: the mark lapses at the call's deadline
                log.warning("%s: cannot clear the lease's call mark: %s", self.release_id, _why(exc))


def _why(exc: Exception) -> str:
    """One line for a log: the database's own message, or the exception's."""
    return first_line(exc) if isinstance(exc, SQLAlchemyError) else f"{type(exc).__name__}: {exc}"


def held_by(session: Session, release_id: str, holder: str) -> bool:
    """Whether ``holder`` still holds the lease, checked inside the caller's transaction.

    The lease row is locked, so no other controller can take the lease over before the
    transaction ends: a controller writes its outcome only while nobody else drives the release.
    (An expired lease nobody took over is still its holder's: anyone taking it locks this row.)
    """
    lease = session.get(Lease, release_id, with_for_update=True)
    return lease is not None and lease.holder == holder


def announce(store: Store, holder: str, now: datetime, ttl_s: float) -> int:
    """Say ``holder`` runs until ``now + ttl_s``; how many controllers run now, itself included.

    Every controller that drives whatever is active renews its row each pass, so a dead one drops
    out of the count one lease period after its last pass, when its leases run out too. One on this
    host whose process is gone (``process_gone``) drops out at once, with its row: its leases are free at
    once too, and counting it would keep the survivors at their share, leaving its releases
    undriven until its row lapsed. Rows dead for a day are swept.
    """
    until = now + timedelta(seconds=ttl_s)
    with store.transaction() as s:
        row = s.get(ControllerPresence, holder, with_for_update=True)
        if row is None:
            s.add(ControllerPresence(holder=holder, expires_at=until))
        else:
            row.expires_at = until
        s.flush()
        s.execute(delete(ControllerPresence).where(ControllerPresence.expires_at < now - timedelta(days=1)))
        live = select(ControllerPresence.holder).where(ControllerPresence.expires_at > now)
        holders = list(s.execute(live).scalars())
        gone = [h for h in holders if process_gone(h)]
        if gone:
            s.execute(delete(ControllerPresence).where(ControllerPresence.holder.in_(gone)))
        return len(holders) - len(gone)


def withdraw(store: Store, holder: str) -> None:
    """Drop ``holder`` from the running controllers (it stops cleanly: the others share at once)."""
    with store.transaction() as s:
        s.execute(delete(ControllerPresence).where(ControllerPresence.holder == holder))


def running(session: Session, now: datetime) -> list[tuple[str, datetime, list[tuple[str, datetime]]]]:
    """The controllers recorded as running, each with when its presence lapses and the leases it holds.

    A controller whose presence lapsed is listed as long as it still holds an unexpired lease
    (a ``release start --wait``, which takes no part in sharing, shows up that way). One of this
    host whose process is gone (``process_gone``) is not: it drives nothing, and its leases are anyone's.
    """
    held: dict[str, list[tuple[str, datetime]]] = {}
    for lease in session.execute(select(Lease).where(Lease.expires_at > now).order_by(Lease.release_id)).scalars():
        held.setdefault(lease.holder, []).append((lease.release_id, lease.expires_at))
    present = {
        row.holder: row.expires_at
        for row in session.execute(select(ControllerPresence).where(ControllerPresence.expires_at > now)).scalars()
    }
    for holder, leases_ in held.items():
        present.setdefault(holder, max(until for _, until in leases_))
    return [
        (holder, until, held.get(holder, [])) for holder, until in sorted(present.items()) if not process_gone(holder)
    ]


def fair_share(active: int, live: int) -> int:
    """How many of ``active`` releases one of ``live`` controllers drives: the rest is the others'."""
    return math.ceil(active / max(1, live))


def give_up(store: Store, release_id: str, holder: str, now: datetime) -> None:
    """Let the lease go at once (a controller that stops cleanly)."""
    with store.transaction() as s:
        lease = s.get(Lease, release_id, with_for_update=True)
        if lease is not None and lease.holder == holder:
            lease.expires_at = now
