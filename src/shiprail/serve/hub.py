"""The flag hub: published rollout configs in memory, long-polls woken on change, SDK contacts stored.

Long-polls are answered from memory on the event loop, so thousands of SDKs waiting cost no
threads and no database connections. One watcher thread keeps memory in step with the store:

- it is woken at once by a publish in this process (the controller running inside ``serve``),
  and looks every ``FLAG_WATCH_SECONDS`` for publishes by other processes (a separate
  ``shiprail controller``, another ``serve`` behind the same load balancer);
- it writes the SDK contacts heard since its last pass (who applies which revision) to the store,
  where the flag router reads them to confirm a weight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shiprail import defaults
from shiprail.clock import Clock
from shiprail.routers import flag
from shiprail.store import flags
from shiprail.store.db import Store, first_line
from shiprail.store.flags import Published

log = logging.getLogger(__name__)


class FlagHub:
    """Serves the published configs of ``services`` and tracks the SDKs that fetch them."""

    def __init__(
        self, store: Store, clock: Clock, services: Iterable[str], *, watch_s: float = defaults.FLAG_WATCH_SECONDS
    ) -> None:
        self.store = store
        self.clock = clock
        self.watch_s = watch_s
        self._services = set(services)
        self._configs: dict[str, Published] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: dict[tuple[str, str], tuple[int, object]] = {}
        self._pruned: datetime | None = None  # when forgotten SDKs were last deleted
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failing_since: datetime | None = None  # the first of an unbroken run of failed passes (bugs)
        # False while this serve's last look in the store failed (the store is down or cut off):
        # its configs may be older than what other serves hand out.
        self._store_reached = True
        # False until the configs were first read from the store (serve started while it was away).
        self._loaded = False
        self._unsubscribe = flag.on_publish(self._published_here)

    # ----------------------------------------------------------------------------- lifecycle

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Load every config and start the watcher; ``loop`` runs the long-polls."""
        self._loop = loop
        try:
            self._refresh(force=True)
        except SQLAlchemyError as exc:
            # The store is away as serve starts (restarting, its connection cut as serve opened it):
            # serve starts all the same, and the watcher loads the configs once the store answers.
            # Until then no config is known (``loaded``): SDKs get 503 and keep what they hold.
            self._store_reached = False
            log.warning(
                "flag hub cannot reach the store: %s; no config is served until it does (looking again every %gs)",
                first_line(exc),
                self.watch_s,
            )
        self._thread = threading.Thread(target=self._watch, name="shiprail-flag-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher after a last flush of contacts."""
        self._unsubscribe()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def add_service(self, service: str) -> None:
        """Serve one more service (its service file appeared after start)."""
        with self._lock:
            self._services.add(service)
        self._refresh(force=True)

    # ------------------------------------------------------------------------------ requests

    def current(self, service: str) -> Published:
        """The service's config as published (from memory)."""
        return self._configs.get(service) or Published.empty(service)

    def seen(self, service: str, client: str | None, revision: int) -> None:
        """An SDK asked for ``service``'s config holding ``revision`` (0: none): it applies that one."""
        if not client:
            return
        with self._lock:
            self._seen[(service, client)] = (revision, self.clock.now())
        if revision and revision >= self.current(service).revision:
            # An acknowledgement the router may be waiting for: store it now, not at the next pass.
            self._wake.set()

    def left(self, service: str, client: str) -> None:
        """An SDK said it is closing: out of contact now, so no weight change waits for it.

        Its contact is dropped here before the store's row, so the next flush cannot put it back.
        """
        with self._lock:
            self._seen.pop((service, client), None)
        with self.store.transaction() as s:
            flags.forget_client(s, service, client)

    async def catch_up(self, service: str, revision: int, timeout_s: float) -> Published:
        """An SDK holds ``revision`` of ``service``, newer than this hub's: look in the store now, and
        return the config once it is at least that revision, or after ``timeout_s`` as it is."""
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        current = self.current(service)
        while current.revision < revision and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            current = await self.wait_change(service, current.revision, remaining)
        return current

    def watching(self) -> bool:
        """Whether the watcher keeps the configs in step with the store.

        False once it died, or when every pass for ``FLAG_HUB_FAILING_SECONDS`` failed with an
        error other than the store's (a bug: the configs no longer follow the store). An
        unreachable store is not counted: serve keeps answering from memory, as documented.
        """
        if self._stop.is_set() or self._thread is None:
            return True
        failing = self._failing_since
        stuck = failing is not None and (self.clock.now() - failing).total_seconds() > defaults.FLAG_HUB_FAILING_SECONDS
        return self._thread.is_alive() and not stuck

    @property
    def loaded(self) -> bool:
        """Whether the configs were read from the store at least once (False: none is known yet)."""
        return self._loaded

    @property
    def store_reached(self) -> bool:
        """Whether the last look in the store succeeded (False: the configs in memory may be stale)."""
        return self._store_reached

    @property
    def closing(self) -> bool:
        """Shutting down: held long-polls are being answered, no new one is held."""
        return self._closing

    def release_waiters(self) -> None:
        """On the event loop, at shutdown: answer every held long-poll now, and hold no new one."""
        self._closing = True
        for event in self._changed.values():
            event.set()
        self._changed.clear()

    async def wait_change(self, service: str, revision: int, timeout_s: float) -> Published:
        """The service's config once its revision is no longer ``revision``, or after ``timeout_s``."""
        current = self.current(service)
        if current.revision != revision or self._closing:
            return current
        event = self._changed.setdefault(service, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)
        return self.current(service)

    # ------------------------------------------------------------------------------- watcher

    def _published_here(self, service: str, revision: int) -> None:
        self._wake.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.watch_s)
            self._wake.clear()
            # New configs first: a change waits for nobody; contacts can be written a moment later.
            # Every config at the first look that reaches the store, when serve started without it.
            error = self._guarded(lambda: self._refresh(force=not self._loaded), store_logged=False)
            reached = not isinstance(error, SQLAlchemyError)
            # Once when the store goes and once when it is back: a pass runs 20 times a second.
            # Not when a serve going ended the store's waits (Store.stop_lock_waits): it looks no more.
            if isinstance(error, SQLAlchemyError) and self._store_reached and not self.store.stopping:
                log.warning(
                    "flag hub cannot reach the store: %s; serving the configs it holds and looking again every %gs",
                    first_line(error),
                    self.watch_s,
                )
            elif reached and not self._store_reached:
                log.warning("flag hub reaches the store again")
            self._store_reached = reached
            if error is None or isinstance(error, SQLAlchemyError):
                self._failing_since = None  # in step, or the store's outage (not a bug): /healthz stays ok
            elif self._failing_since is None:
                self._failing_since = self.clock.now()  # a bug: /healthz says so once it lasts
            if error is None:
                self._guarded(self._flush_contacts)
        with contextlib.suppress(SQLAlchemyError):
            self._flush_contacts()

    @staticmethod
    def _guarded(step: Callable[[], None], *, store_logged: bool = True) -> Exception | None:
        """Run one step of a pass; the error it raised (logged; the store's only if ``store_logged``), or None."""
        try:
            step()
        except SQLAlchemyError as exc:  # the store is down: keep serving what is in memory
            if store_logged:
                log.warning("flag hub cannot reach the store: %s", first_line(exc))
            return exc
        except Exception as exc:
            # Anything else is a bug, and must not stop the configs from following the store:
            # a watcher that died would serve a rolled-back canary to every SDK from then on.
            log.exception("flag hub: a pass failed; the next one runs as usual")
            return exc
        return None

    def _refresh(self, *, force: bool = False) -> None:
        with self._lock:
            services = set(self._services)
        with self.store.transaction() as s:
            revisions = flags.revisions(s)
            stale = [name for name in services if force or revisions.get(name, 0) != self.current(name).revision]
            fresh = flags.read_all(s, stale) if stale else {}
        loop = self._loop
        for name, published in fresh.items():
            if loop is None or loop.is_closed():
                self._configs[name] = published
            else:
                loop.call_soon_threadsafe(self._swap, name, published)
        if not self._loaded:
            # After the swaps, on the event loop: no request sees "loaded" before the configs.
            if loop is None or loop.is_closed():
                self._loaded = True
            else:
                loop.call_soon_threadsafe(setattr, self, "_loaded", True)

    def _swap(self, service: str, published: Published) -> None:
        """On the event loop: make ``published`` current and wake the long-polls waiting on it."""
        old = self._configs.get(service)
        if old is not None and old.revision == published.revision and old == published:
            return
        self._configs[service] = published
        event = self._changed.pop(service, None)
        if event is not None:
            event.set()

    def _store_contacts(self, rows: list[tuple[str, str, int, object]]) -> None:
        for attempt in range(2):
            try:
                with self.store.transaction() as s:
                    flags.record_contacts(s, rows)  # type: ignore[arg-type]
                return
            except IntegrityError:
                # Another serve stored the same SDK's first contact at the same moment: once more.
                if attempt:
                    raise

    def _flush_contacts(self) -> None:
        with self._lock:
            seen, self._seen = self._seen, {}
        if not seen:
            return
        rows = [(service, client, revision, at) for (service, client), (revision, at) in seen.items()]
        now = self.clock.now()
        # Once a contact window: forget SDKs gone for a day (each process start is a new client id).
        prune = self._pruned is None or (now - self._pruned).total_seconds() >= defaults.FLAG_CONTACT_SECONDS
        try:
            self._store_contacts(rows)
        except Exception:
            # Not stored: kept for the next pass (a contact heard since is newer and stands), or
            # the acknowledgements heard while the store was away would be lost, and a weight
            # the SDKs did take reported unconfirmed.
            with self._lock:
                for key, contact in seen.items():
                    self._seen.setdefault(key, contact)
            raise
        if prune:
            # On its own: a role that may not delete (operations.md's grants before DELETE on
            # flag_clients) still records the contacts the router confirms weights with, and
            # tries again a contact window later rather than at every pass.
            self._pruned = now
            try:
                with self.store.transaction() as s:
                    flags.forget_clients(s, now - timedelta(seconds=defaults.FLAG_CLIENT_KEEP_SECONDS))
            except SQLAlchemyError as exc:
                log.warning("flag hub cannot forget the SDKs gone for a day: %s", first_line(exc))
