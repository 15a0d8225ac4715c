"""The notifier: tells each audience of a release's communication plan what happened, off the critical path.

It never runs inside the controller's work. It reads what the controller (and people) already
committed to the audit chain, queues deliveries in the store (``outbox``), and sends them with no
database transaction open, so a slow or dead channel holds no lock anyone else needs and can
never delay a promotion or a rollback. Each channel sends from a thread of its own, so one
channel that hangs does not hold up the others either.

Every attempt lands in the audit trail (``notification.sent`` / ``notification.failed``, actor
``shiprail:notifier``). A failed attempt is retried after a backoff that doubles up to a cap; after
the last attempt the delivery is ``failed``. Any number of notifiers may run on one store: each
delivery is claimed before it is sent, so two never send it at once.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shiprail import defaults
from shiprail.clock import Clock, WallClock
from shiprail.errors import StoreError
from shiprail.notifiers import ChannelConfig, EmailChannel, outbox
from shiprail.notifiers import channels as channel_io
from shiprail.notifiers.messages import Message
from shiprail.store.db import Store, first_line, store_error_text

log = logging.getLogger(__name__)

ACTOR = outbox.ACTOR
# (channel config, message) -> the email recipients reached (None or () for none, as for a
# webhook); raises channels.DeliveryError when the channel did not take it.
Sender = Callable[[ChannelConfig, Message], Sequence[str] | None]
EventHook = Callable[[str, str, dict[str, Any]], None]


class Notifier:
    """Delivers a store's release events to the channels their communication plans name.

    ``channels`` are the policy's (``shiprail.yaml`` ``channels``); ``env`` holds the variables
    they name (webhook URLs, secrets). ``send`` replaces the real channels (tests). ``on_event``
    hears ``(release_id, kind, payload)`` of each attempt recorded.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        channels: Mapping[str, ChannelConfig],
        *,
        env: Mapping[str, str] = os.environ,
        send: Sender | None = None,
        attempts: int = defaults.NOTIFY_ATTEMPTS,
        backoff_s: float = defaults.NOTIFY_BACKOFF_SECONDS,
        backoff_max_s: float = defaults.NOTIFY_BACKOFF_MAX_SECONDS,
        timeout_s: float = defaults.NOTIFY_TIMEOUT_SECONDS,
        poll_s: float = defaults.NOTIFY_POLL_SECONDS,
        claim_s: float = defaults.NOTIFY_CLAIM_SECONDS,
        max_age_s: float | None = defaults.NOTIFY_MAX_AGE_SECONDS,
        batch: int = defaults.NOTIFY_BATCH,
        tls: ssl.SSLContext | None = None,
        cursor: str = outbox.CURSOR,
        on_event: EventHook | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.store = store
        self.clock = clock
        self.channels = dict(channels)
        self.env = env
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.claim_s = max(claim_s, timeout_s)
        self.max_age_s = max_age_s
        self.batch = batch
        self.tls = tls
        self.cursor = cursor
        self.on_event = on_event
        self._send = send or self._send_for_real
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._workers: list[threading.Thread] = []
        self._closing = threading.Event()
        self._http: httpx.Client | None = None

    # ---------------------------------------------------------------------------------- sending

    def _send_for_real(self, channel: ChannelConfig, message: Message) -> Sequence[str]:
        # One HTTP client and one TLS context for the notifier's life: making either costs tens of
        # milliseconds of CPU (the CA bundle), which the controller's thread would feel.
        with self._lock:
            if self._http is None:
                self._http = channel_io.http_client()
            if self.tls is None and isinstance(channel, EmailChannel) and channel.starttls:
                self.tls = ssl.create_default_context()
            http, tls = self._http, self.tls
        return channel_io.send(
            channel, message, env=self.env, now=self.clock.now(), timeout_s=self.timeout_s, tls=tls, http=http
        )

    def attempt(self, item: outbox.Due) -> bool | None:
        """One attempt at one due delivery: claim, send (no transaction open), record.

        True: sent; False: failed (retried later, or failed for good); None: not ours to send
        (another notifier claimed it, or it is no longer due).
        """
        try:
            with self.store.transaction() as s:
                claimed = outbox.claim(s, item, self.clock.now(), claim_s=self.claim_s, max_attempts=self.attempts)
        except (SQLAlchemyError, StoreError) as exc:
            # The store away (a restart, a failover, connections cut) is no bug: one line, as the
            # loop says it, not a traceback; the delivery is still due at the next pass.
            why = store_error_text(exc)
            log.warning(
                "delivery %s: cannot claim it: the store failed: %s; trying again at the next pass", item.id, why
            )
            return None
        except Exception:
            log.exception("delivery %s: cannot claim it", item.id)
            return None
        if claimed is None:
            return None
        message = claimed.message
        error: str | None = None
        retry_after_s: float | None = None
        delivered: Sequence[str] = ()
        refused: dict[str, str] = {}
        channel = self.channels.get(message.channel)
        if channel is None:
            known = ", ".join(sorted(self.channels)) or "none"
            error = f"channel {message.channel!r} is not defined in shiprail.yaml channels (defined: {known})"
        else:
            try:
                delivered = self._send(channel, message) or ()
            except channel_io.DeliveryError as exc:
                error, retry_after_s = str(exc), exc.retry_after_s
                delivered, refused = exc.delivered, exc.refused
            except Exception as exc:  # a bug in a channel must cost one attempt, not the notifier
                log.exception("delivery %s: channel %s failed", claimed.id, message.channel)
                error = f"{type(exc).__name__}: {exc}"[:500]
        try:
            with self.store.transaction() as s:
                status = outbox.record(
                    s,
                    claimed,
                    self.clock.now(),
                    error,
                    max_attempts=self.attempts,
                    backoff_s=self.backoff_s,
                    backoff_max_s=self.backoff_max_s,
                    retry_after_s=retry_after_s,
                    delivered=delivered,
                    refused=refused,
                )
        except (SQLAlchemyError, StoreError) as exc:
            # The claim lapses and the delivery is tried again (it may then arrive twice).
            log.warning(
                "delivery %s: cannot record attempt %s: the store failed: %s; its claim lapses and it is sent "
                "again (it may arrive twice)",
                claimed.id,
                claimed.attempt,
                store_error_text(exc),
            )
            return error is None
        except Exception:
            # The claim lapses and the delivery is tried again (it may then arrive twice).
            log.exception("delivery %s: cannot record attempt %s", claimed.id, claimed.attempt)
            return error is None
        if self.on_event is not None:
            kind = "notification.sent" if error is None else "notification.failed"
            said = f"{message.event} to {message.audience} via {message.channel}, attempt {claimed.attempt}: {status}"
            detail = {"channel": message.channel, "event": message.event, "attempt": claimed.attempt, "status": status}
            # ``reason``: the one line a console prints.
            self.on_event(
                message.release_id, kind, {**detail, "error": error, "reason": said + (f" ({error})" if error else "")}
            )
        return error is None

    def _work(self, channel: str, items: list[outbox.Due]) -> None:
        """Send one channel's due deliveries in order; stop at its first failure (it is down: later)."""
        try:
            for item in items:
                if self._closing.is_set() or self.attempt(item) is False:
                    return
        finally:
            with self._lock:
                self._busy.discard(channel)

    # ---------------------------------------------------------------------------------- the loop

    def enqueue(self) -> int:
        """Queue the deliveries of every audit event after the cursor; how many were added."""
        total, more, clashes = 0, True, 0
        while more:
            try:
                with self.store.transaction() as s:
                    added, more = outbox.enqueue(
                        s, self.clock.now(), name=self.cursor, max_age_s=self.max_age_s, span=self.batch
                    )
            except IntegrityError:
                # Another notifier created the cursor at the same moment; it holds it now.
                clashes += 1
                if clashes > 3:
                    raise
                continue
            total += added
        return total

    def busy(self) -> set[str]:
        """The channels sending right now."""
        with self._lock:
            return set(self._busy)

    def tick(self, *, wait: bool = True) -> datetime | None:
        """Queue new events' deliveries, then attempt the due ones; when the next one is due (None: none).

        Each channel with due deliveries sends from a thread of its own; ``wait`` waits for them
        (``False`` leaves a slow channel sending while the loop carries on; the channel is skipped
        until it is done).
        """
        self.enqueue()
        with self.store.transaction() as s:
            skip = self.busy()
            items = outbox.due(s, self.clock.now(), skip=skip, limit=self.batch)
            if not items:
                return outbox.next_due(s, skip=skip)
        groups: dict[str, list[outbox.Due]] = {}
        for item in items:
            groups.setdefault(item.channel, []).append(item)
        started: list[threading.Thread] = []
        for channel, group in groups.items():
            with self._lock:
                if channel in self._busy:
                    continue
                self._busy.add(channel)
            thread = threading.Thread(
                target=self._work, args=(channel, group), name=f"shiprail-notify-{channel}", daemon=True
            )
            thread.start()
            started.append(thread)
        with self._lock:
            self._workers = [t for t in self._workers if t.is_alive()] + started
        if wait:
            for thread in started:
                thread.join()
        with self.store.transaction() as s:
            return outbox.next_due(s, skip=self.busy())

    def run(self, stop: threading.Event | None = None) -> None:
        """Tick until ``stop`` is set, sleeping on the clock until the next retry or poll."""
        stop = stop or threading.Event()
        wall = isinstance(self.clock, WallClock)
        away: str | None = None  # why the store could not be reached, while it cannot
        try:
            while not stop.is_set():
                try:
                    wake = self.tick(wait=not wall)
                    if away is not None:
                        log.warning("notifier: the store answers again")
                        away = None
                except SQLAlchemyError as exc:
                    # The store is away (a restart, connections cut): one line when the outage starts
                    # (or its cause changes), not one a second (`release start --wait` prints these
                    # into a CI job's log); look again at each poll.
                    why = first_line(exc)
                    if why != away and not self.store.stopping:
                        log.warning("notifier: cannot reach the store: %s; looking again every %gs", why, self.poll_s)
                    away = why
                    wake = None
                except Exception:
                    log.exception("notifier: tick failed")
                    wake = None
                if stop.is_set():
                    return
                poll = self.clock.now() + timedelta(seconds=self.poll_s)
                if wall:
                    # Look at least every poll interval: new events arrive meanwhile.
                    delay = ((min(wake, poll) if wake else poll) - self.clock.now()).total_seconds()
                    if delay > 0:
                        stop.wait(delay)
                else:
                    # A simulated clock jumps straight to the next retry; nothing happens between.
                    self.clock.sleep_until(wake or poll)
        finally:
            self.close()

    def close(self, wait_s: float | None = None) -> None:
        """Stop sending; wait up to ``wait_s`` (default: one timeout) for sends under way to be recorded.

        A closed notifier still queues deliveries when ticked, but sends nothing more.
        """
        self._closing.set()
        deadline = time.monotonic() + (self.timeout_s if wait_s is None else wait_s)
        with self._lock:
            workers = list(self._workers)
        for thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            http, self._http = self._http, None
        if http is not None and not any(t.is_alive() for t in workers):
            http.close()
