"""The SDK client: local stable/canary decisions, a long-polled config, batched outcomes.

``Client.variant`` answers from memory: it reads one immutable snapshot (a single attribute load,
atomic under the GIL) and hashes the key, with no lock, no logging and no network. A daemon thread
keeps the snapshot fresh by long-polling ``shiprail serve`` (docs/flags.md, "The SDK protocol") and
swaps in a new snapshot object when the config changes; a second thread posts the outcomes
``record()`` batched. Everything fails towards the last known config, and towards "stable" before
the first one arrives.

This module imports only the stdlib, httpx and the stdlib-only ``shiprail.defaults`` and
``shiprail.errors``: apps embed it, and must not pay for shiprail's server side.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import random
import secrets
import socket
import ssl
import threading
import time
import unicodedata
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, NamedTuple, Self

import httpx

from shiprail import __version__
from shiprail.defaults import (
    FLAG_BUCKETS,
    FLAG_MAX_WAIT_SECONDS,
    LATENCY_BUCKETS,
    MAX_VERSION_CHARS,
    SDK_CLOSE_SECONDS,
    SDK_FLUSH_SECONDS,
    SDK_POLL_WAIT_SECONDS,
    SDK_RETRY_MAX_SECONDS,
    SDK_RETRY_SECONDS,
    SDK_TIMEOUT_SECONDS,
)
from shiprail.errors import ShiprailError
from shiprail.sdk.hashing import CANARY, STABLE, Evaluator, Variant, key_text

log = logging.getLogger(__name__)

# --- SDK-local limits (not in shiprail.defaults: only the SDK uses them) ---------------------------
# Distinct versions with pending outcomes; records for further versions are dropped (and counted),
# so a caller passing unbounded strings to record() cannot grow memory without bound.
MAX_PENDING_VERSIONS: Final = 100
# Outcomes kept across failed metric posts; a failed batch that would push the backlog beyond this is
# dropped (logged, counted in ``dropped``) rather than carried, so an outage cannot pile up forever.
MAX_CARRIED_OUTCOMES: Final = 100_000

CONFIG_FIELDS: Final = ("service", "revision", "release", "stable", "canary", "weight", "salt")
# Bucket labels as the metrics payload names them: "0.005", ..., "10", then "+Inf".
_LATENCY_KEYS: Final = (*(format(bound, "g") for bound in LATENCY_BUCKETS), "+Inf")
# counts[0] = requests, counts[1] = errors, counts[2 + i] = outcomes in latency bucket i.
_COUNT_SLOTS: Final = 2 + len(_LATENCY_KEYS)
# httpcore trace events whose return value is a network stream we may need to shut down on close().
_STREAM_EVENTS: Final = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})
_RETRYABLE_4XX: Final = frozenset({408, 429})
# Bound once for variant(): module-global loads are cheaper than attribute lookups per call.
_from_bytes: Final = int.from_bytes
_random: Final = random.random
_monotonic = time.monotonic  # the SDK's only clock (tests replace it)


class ShiprailSdkError(ShiprailError):
    """A request the SDK made on the caller's behalf (a signal) failed; the message is one sentence."""


class Decision(NamedTuple):
    """One evaluation with everything it was made from, all read from the same config."""

    variant: Variant
    version: str | None  # the version the variant maps to; None before any fetch
    revision: int  # the config's revision; 0 before any fetch
    weight: float  # the canary's share in percent; 0 before any fetch
    ready: bool  # whether a config had been fetched (False: the variant is the "stable" fallback)


class _Snapshot(Evaluator):
    """One applied config: the evaluator plus the fields ``version()``, ``record()`` and callers read.

    Never mutated once built; the client replaces the whole object, so a reader sees either the old
    config or the new one, never a mix.
    """

    __slots__ = ("canary_version", "config", "revision", "stable_version")

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        # No config yet: weight 0 serves everyone the stable version.
        fields: Mapping[str, Any] = {"salt": "", "weight": 0.0, "revision": 0, "stable": None, "canary": None}
        if config is not None:
            fields = config
        super().__init__(fields["salt"], fields["weight"])
        self.config: Final = None if config is None else dict(config)
        self.revision: Final[int] = fields["revision"]
        self.stable_version: Final[str | None] = fields["stable"]
        self.canary_version: Final[str | None] = fields["canary"]


_NO_CONFIG: Final = _Snapshot(None)


def parse_config(body: object, service: str | None = None) -> dict[str, Any]:
    """The config in ``body`` with exactly the protocol's fields, or ValueError naming what is wrong.

    Unknown extra fields are ignored (a newer server may add some); ``service``, when given, must match.
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"the config is a {type(body).__name__}, not a JSON object")
    missing = [name for name in CONFIG_FIELDS if name not in body]
    if missing:
        raise ValueError(f"the config lacks {', '.join(missing)}")
    name, revision, weight, salt = body["service"], body["revision"], body["weight"], body["salt"]
    if not isinstance(name, str):
        raise ValueError(f"the config's service {name!r} is not a string")
    if service is not None and name != service:
        raise ValueError(f"the config is for service {name!r}, not {service!r}")
    # bool is an int subclass; True is no revision or weight.
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise ValueError(f"the config's revision {revision!r} is not a whole number >= 0")
    if (
        not isinstance(weight, int | float)
        or isinstance(weight, bool)
        or not math.isfinite(weight)
        or not 0 <= weight <= 100
    ):
        raise ValueError(f"the config's weight {weight!r} is not a number from 0 to 100")
    if not isinstance(salt, str):
        raise ValueError(f"the config's salt {salt!r} is not a string")
    for field in ("release", "stable", "canary"):
        if body[field] is not None and not isinstance(body[field], str):
            raise ValueError(f"the config's {field} {body[field]!r} is neither a string nor null")
    return {field: body[field] for field in CONFIG_FIELDS}


def next_retry_delay(failures: int, rand: Callable[[], float] = random.random) -> float:
    """The wait before the next fetch after ``failures`` (1 or more) failed fetches in a row.

    Capped exponential backoff with equal jitter, as LaunchDarkly's SDKs back off: the ceiling
    doubles from SDK_RETRY_SECONDS up to SDK_RETRY_MAX_SECONDS, and the wait is drawn from its upper
    half by ``rand`` (uniform in [0, 1)). Without the jitter every app cut off by the same event (serve
    restarted, a load balancer failed over) retried at the same instants, all at once each time.
    """
    ceiling = min(SDK_RETRY_MAX_SECONDS, SDK_RETRY_SECONDS * 2.0 ** min(max(failures, 1) - 1, 64))
    return ceiling / 2 + rand() * ceiling / 2


# The least time left in close()'s budget worth starting a request with.
_LEAST_REQUEST_SECONDS: Final = 0.01


def _until(deadline: float | None) -> httpx.Timeout | Any:
    """A request's timeout that ends by ``deadline`` (monotonic); None: the client's own."""
    if deadline is None:
        return httpx.USE_CLIENT_DEFAULT
    return httpx.Timeout(max(_LEAST_REQUEST_SECONDS, deadline - time.monotonic()))


def _detail(response: httpx.Response) -> str:
    """The server's one-sentence reason (the JSON ``detail``), else the start of the body."""
    try:
        detail = response.json().get("detail")
    except Exception:  # not JSON, or not an object: fall back to the raw text
        detail = None
    if isinstance(detail, str) and detail:
        return detail.rstrip(".")
    text = response.text.strip()[:200]
    return text or response.reason_phrase or "no detail"


def sendable_version(version: object) -> bool:
    """Whether serve stores ``version`` as it is: a string, not empty, no spaces around it, at most
    ``MAX_VERSION_CHARS`` characters, UTF-8 text without control characters (its ``check_batch``)."""
    if not isinstance(version, str) or not version or version != version.strip():
        return False
    if len(version) > MAX_VERSION_CHARS or any(unicodedata.category(ch) == "Cc" for ch in version):
        return False
    try:
        version.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def sdk_key_problem(key: str) -> str | None:
    """Why no ``Authorization`` header can carry ``key`` as it is, or None when one can.

    A header's value is printable ASCII (httpx refuses anything else) and its spaces around are
    not part of it. The SDK refuses such a key at construction, and serve at start.
    """
    if key != key.strip():
        return "has spaces around it"
    if not all(" " <= ch <= "~" for ch in key):
        return "holds a character other than printable ASCII"
    return None


def _check_connection(url: str, sdk_key: str) -> None:
    """ValueError for a ``url`` or an ``sdk_key`` no request could ever succeed with.

    Retrying them (everyone on stable, a warning in the log) would only hide a misconfiguration
    that a restart with the right value fixes.
    """
    try:
        parsed: httpx.URL | None = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            "url must be shiprail serve's base URL, with http:// or https:// and a host "
            f"(http://shiprail.internal:8700), not {url!r}"
        )
    if not sdk_key:
        raise ValueError(
            "sdk_key is empty: pass the service's SDK key, the value where shiprail serve runs of the variable "
            "its router.sdk_key_env names (SHIPRAIL_SDK_KEY by default)"
        )
    problem = sdk_key_problem(sdk_key)
    if problem == "has spaces around it":
        raise ValueError(
            f"sdk_key {problem} (a key read from a file often ends in a line break): strip it; "
            "no HTTP header can carry it as it is"
        )
    if problem is not None:
        raise ValueError(f"sdk_key {problem}: no HTTP header can carry it; pass the key shiprail serve holds")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS context of every client in this process (httpx's default: certifi, or SSL_CERT_FILE/DIR).

    Building one loads the CA bundle, tens to hundreds of milliseconds: httpx builds one per pool,
    so each client cost two, and a forked worker built its two on its first decision, on the
    thread of the request it was answering. A forked child inherits this one.
    """
    return httpx.create_ssl_context()


# The online clients of this process, for the fork hook below (weak: a dropped client is not kept).
_ONLINE: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_ONLINE):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX; Windows does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """Local stable/canary decisions for one service, kept current by ``shiprail serve``.

    ``variant(key)`` and ``version(key)`` never touch the network. With ``start=True`` (the default)
    the client starts two daemon threads: one long-polls the config, one posts ``record()`` outcomes
    every ``SDK_FLUSH_SECONDS``. With ``start=False`` nothing runs in the background and tests drive
    ``poll_once()`` and ``flush()`` themselves. Use it as a context manager, or call ``close()``.
    """

    # None for a client built by from_config(), which has no network at all.
    _poll_http: httpx.Client | None
    _http: httpx.Client | None
    _threads: list[threading.Thread]

    def __init__(
        self,
        url: str,
        service: str,
        sdk_key: str,
        *,
        poll_wait: float = SDK_POLL_WAIT_SECONDS,
        timeout: float = SDK_TIMEOUT_SECONDS,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        start: bool = True,
        transport: httpx.BaseTransport | None = None,
        max_stale: float | None = None,
    ) -> None:
        """Connect to the ``shiprail serve`` at ``url`` for ``service``, authenticating with ``sdk_key``.

        ``poll_wait`` is how long each long-poll may be held (0 to FLAG_MAX_WAIT_SECONDS; 0 polls every
        SDK_RETRY_SECONDS instead); ``timeout`` bounds connecting and every other request; ``on_change``
        is called with a copy of each newly applied config, from the polling thread; ``transport``
        replaces httpx's network transport (tests pass an ``httpx.MockTransport``). ``max_stale``
        (seconds; None: never) is how long the client may go without hearing from serve before it
        serves everyone the stable version: cut off, it cannot learn of a rollback.
        """
        if not 0 <= poll_wait <= FLAG_MAX_WAIT_SECONDS:
            raise ValueError(f"poll_wait must be from 0 to {FLAG_MAX_WAIT_SECONDS:g} seconds, not {poll_wait!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if max_stale is not None and not max_stale > poll_wait + timeout:
            raise ValueError(
                f"max_stale must be longer than poll_wait + timeout ({poll_wait + timeout:g} s), not {max_stale!r}:"
                " a healthy long-poll is silent that long"
            )
        _check_connection(url, sdk_key)
        self._setup(url, service, on_change, poll_wait, timeout)
        self.max_stale: float | None = max_stale
        self._sdk_key, self._transport = sdk_key, transport
        self._connect()
        _ONLINE.add(self)
        if start:
            self._start_threads()

    def _connect(self) -> None:
        """This client's connection pools, sending its ``client_id``; TLS with the process's one context."""
        headers = {
            "Authorization": f"Bearer {self._sdk_key}",
            "X-Shiprail-Client": self.client_id,
            "User-Agent": f"shiprail-sdk-python/{__version__}",
        }
        tls = _tls_context()
        # Two connection pools: the long-poll holds its connection for up to poll_wait, and close()
        # shuts that connection's socket down to end the wait, which must not hit a metrics post.
        self._poll_http = httpx.Client(
            headers=headers,
            # The server may hold the request poll_wait seconds before answering: read must outlast it.
            timeout=httpx.Timeout(self.timeout, read=self.poll_wait + self.timeout),
            transport=self._transport,
            verify=tls,
        )
        self._http = httpx.Client(headers=headers, timeout=self.timeout, transport=self._transport, verify=tls)

    def _start_threads(self) -> None:
        self._threads = [
            threading.Thread(target=self._poll_loop, name=f"shiprail-sdk-poll-{self.service}", daemon=True),
            threading.Thread(target=self._flush_loop, name=f"shiprail-sdk-flush-{self.service}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _setup(
        self,
        url: str,
        service: str,
        on_change: Callable[[dict[str, Any]], None] | None,
        poll_wait: float = SDK_POLL_WAIT_SECONDS,
        timeout: float = SDK_TIMEOUT_SECONDS,
    ) -> None:
        """The state every client has, online or not (from_config() skips __init__)."""
        self.url = url.rstrip("/")
        self.service = service
        self.client_id = "py-" + secrets.token_hex(6)
        self.poll_wait = float(poll_wait)
        self.timeout = float(timeout)
        base = f"{self.url}/api/v1/sdk/{service}"
        self._config_url = base + "/config"
        self._metrics_url = base + "/metrics"
        self._signals_url = base + "/signals"
        #: Outcomes record() could not keep: unknown version, too many versions, or a dropped batch.
        self.dropped = 0
        self._listeners: list[Callable[[dict[str, Any]], None]] = [] if on_change is None else [on_change]
        # Told True when the client starts serving everyone stable past max_stale, False when it stops.
        self._stale_listeners: list[Callable[[bool], None]] = []
        self._snap: _Snapshot = _NO_CONFIG
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._threads = []
        self._poll_http = None
        self._http = None
        # Network streams the long-poll opened (httpcore trace), for close() to shut down.
        self._streams: deque[Any] = deque(maxlen=4)
        # Guards _pending and dropped; record() holds it for a few integer increments only.
        self._lock = threading.Lock()
        # Serialises posts, so the flusher thread and flush() never send the same counts twice.
        self._flush_lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}
        # A batch that failed to post (its Idempotency-Key and counts), re-sent as it was before any
        # newer outcomes: serve stores a key once, so a batch it did store is never counted twice.
        self._unsent: tuple[str, dict[str, list[int]]] | None = None
        self._batch_seq = itertools.count(1)
        self._failing: str | None = None  # the last reported fetch problem, to log each one once
        # Draws each retry's jitter (tests replace it); random reseeds in a forked child, so workers differ.
        self._retry_random: Callable[[], float] = random.random
        self.max_stale = None
        self._last_contact = _monotonic()
        # While cut off past max_stale: the config serve last sent, and the all-stable stand-in served instead.
        self._stale: tuple[dict[str, Any], _Snapshot] | None = None
        self._flush_failing = False
        # In a forked child until its first use (see _after_fork): pools and threads not started yet.
        self._asleep = False
        self._dormant = False  # and the parent ran threads: the child starts its own at its first use
        self._wake_lock = threading.Lock()

    def _after_fork(self) -> None:
        """In a forked child (a pre-forking web server's worker): become a client of its own.

        ``fork`` copies the client but not its threads: without this the worker would never poll
        again — keeping a rolled-back canary for ever — while the parent, under the same client id,
        acknowledged every revision for it, and the worker's outcomes would never be posted. The
        child gets its own id (serve then waits for its acknowledgement too), fresh locks (the
        parent's may have been held at the fork), no pending outcomes (the parent posts those) and
        keeps the config it had. Its connection pools and threads start at its first use of the
        client (``_wake``), not here: a child that only execs another program (``subprocess`` with
        ``preexec_fn`` runs this hook too) must not start threads, nor contact serve as a client
        that then never acknowledges. The parent's pools are dropped, not closed (their sockets
        stay the parent's); a ``transport`` passed to the constructor is the parent's object.
        """
        ready = self._ready.is_set()
        # Only an online client is registered for this hook: it always had its pools.
        self._asleep = not self._closed
        self._dormant = bool(self._threads) and not self._closed
        self.client_id = "py-" + secrets.token_hex(6)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake_lock = threading.Lock()
        self._pending = {}
        self._unsent = None
        self._ready = threading.Event()
        if ready:
            self._ready.set()
        self._stop = threading.Event()
        if self._closed:
            self._stop.set()
        self._streams = deque(maxlen=4)
        self._threads = []

    def _wake(self) -> None:
        """A forked child's first use of the client: its own connection pools, and threads if the parent ran them."""
        with self._wake_lock:
            if not self._asleep:
                return
            self._connect()
            if self._dormant:
                self._start_threads()
            self._asleep = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A client fixed to ``config``: no network, no threads (tests, offline use, benchmarks).

        ``record()`` still counts (see ``pending_metrics()``); ``flush()`` returns False, and
        ``poll_once()`` and ``signal()`` raise ShiprailSdkError. Raises ValueError for a malformed config.
        """
        parsed = parse_config(config)
        client = cls.__new__(cls)
        client._setup("", parsed["service"], None)
        client._snap = _Snapshot(parsed)
        client._ready.set()
        return client

    # --- evaluation: the hot path ------------------------------------------------------------------

    def variant(self, key: str | int | None = None) -> Variant:
        """``"canary"`` or ``"stable"`` for ``key`` (sticky per key; an int as its digits), per request without one.

        Local and lock-free: one snapshot read and one hash. "stable" until a config has been fetched.
        """
        # Evaluator.variant() inlined: this is the call apps make per request, and a Python call frame
        # is a noticeable share of its cost. Reading self._snap once keeps the decision on one config.
        if self._asleep:
            self._wake()
        snap = self._snap
        if key is None:
            return CANARY if _random() * 100 < snap.split else STABLE
        if key.__class__ is not str:  # one identity test for the usual str; an int becomes its digits
            key = key_text(key)
        limit = snap.threshold
        if 0 < limit < FLAG_BUCKETS:
            state = snap.prefix.copy()
            state.update(key.encode("utf-8", "surrogatepass"))
            return CANARY if _from_bytes(state.digest(), "big") % FLAG_BUCKETS < limit else STABLE
        return CANARY if limit else STABLE

    def version(self, key: str | int | None = None) -> str | None:
        """The version ``variant(key)`` maps to under the current config (None before any fetch)."""
        if self._asleep:
            self._wake()
        snap = self._snap
        return snap.canary_version if snap.variant(key) == CANARY else snap.stable_version

    def evaluate(self, key: str | int | None = None) -> Decision:
        """``variant(key)`` together with its version and the config revision, from one snapshot.

        For callers that report what they decided (the OpenFeature provider, logs); slower than variant().
        """
        if self._asleep:
            self._wake()
        snap = self._snap
        variant = snap.variant(key)
        version = snap.canary_version if variant == CANARY else snap.stable_version
        return Decision(variant, version, snap.revision, snap.weight, snap.config is not None)

    @property
    def revision(self) -> int:
        """The applied config's revision; 0 before any fetch."""
        if self._asleep:
            self._wake()
        return self._snap.revision

    @property
    def config(self) -> dict[str, Any] | None:
        """A copy of the applied config, or None before any fetch."""
        if self._asleep:
            self._wake()
        config = self._snap.config
        return None if config is None else dict(config)

    @property
    def ready(self) -> bool:
        """Whether a config has been fetched (and applied) at least once."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first config is applied or ``timeout`` seconds pass; True when ready."""
        if self._asleep:
            self._wake()
        return self._ready.wait(timeout)

    # --- config polling ----------------------------------------------------------------------------

    def poll_once(self) -> int:
        """One fetch cycle: request the config, apply a valid new one; the HTTP status, 0 if unreachable.

        The first fetch asks with ``wait=0``; later ones send ``If-None-Match`` and long-poll for
        ``poll_wait`` seconds. A 200 whose body is malformed is answered 200 but changes nothing.
        """
        if self._asleep:
            self._wake()
        if self._poll_http is None:
            raise ShiprailSdkError(f"the client for {self.service} is offline (built from a config) and cannot poll")
        return self._poll()[0]

    def _poll(self) -> tuple[int, bool]:
        """Fetch once and keep track of contact with serve; as ``_fetch``."""
        status, usable = self._fetch()
        self._track(usable)
        return status, usable

    def _track(self, usable: bool) -> None:
        """After a fetch: past ``max_stale`` without a usable answer, serve stable; on contact, the config again."""
        now = _monotonic()
        if usable:
            self._last_contact = now
            stale, self._stale = self._stale, None
            if stale is not None:
                held, stand_in = stale
                if self._snap is stand_in:  # a 304: what serve last sent still holds
                    self._snap = _Snapshot(held)
                log.warning("shiprail SDK for %s hears from shiprail again: serving its config", self.service)
                self._tell_stale(False)
            return
        if self.max_stale is None or self._stale is not None or now - self._last_contact <= self.max_stale:
            return
        config = self._snap.config
        if config is None or not config["weight"]:
            return
        stand_in = _Snapshot({**config, "weight": 0.0})
        self._stale = (config, stand_in)
        self._snap = stand_in
        log.warning(
            "shiprail SDK for %s has not heard from shiprail for %.0f s (max_stale %g s): serving everyone %s "
            "until it does, since a rollback may have been published meanwhile",
            self.service,
            now - self._last_contact,
            self.max_stale,
            config["stable"],
        )
        self._tell_stale(True)

    def _tell_stale(self, stale: bool) -> None:
        for listener in list(self._stale_listeners):
            try:
                listener(stale)
            except Exception:  # the callback is the app's; its failure must not stop the polling
                log.exception("a stale-state callback of the shiprail SDK for %s failed", self.service)

    @property
    def stale(self) -> bool:
        """Whether the client is cut off past ``max_stale`` and serves everyone the stable version."""
        return self._stale is not None

    def subscribe_stale(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` when the client starts serving everyone stable past ``max_stale``
        (cut off, it cannot learn of a rollback), ``listener(False)`` when it hears from serve again."""
        self._stale_listeners.append(listener)

    def _fetch(self) -> tuple[int, bool]:
        """Fetch once; (status or 0, whether the answer was usable: a valid 200 or a 304)."""
        assert self._poll_http is not None
        snap = self._snap
        ready = self._ready.is_set()
        headers = {"If-None-Match": f'"{snap.revision}"'} if ready else {}
        wait = self.poll_wait if ready else 0.0
        try:
            response = self._poll_http.get(
                self._config_url,
                params={"wait": format(wait, "g")},
                headers=headers,
                extensions={"trace": self._trace},
            )
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: the client was closed under us
            if not self._stop.is_set():
                self._report(f"cannot reach shiprail at {self.url} for {self.service}: {exc or type(exc).__name__}")
            return 0, False
        if self._stop.is_set():
            return 0, False  # an answer that arrived after close(): the client applies nothing more
        status = response.status_code
        if status == 304:
            self._recovered()
            return status, True
        if status == 200:
            try:
                config = parse_config(response.json(), self.service)
            except ValueError as exc:  # JSONDecodeError is a ValueError too
                self._report(f"shiprail sent a malformed config for {self.service}, keeping the last one: {exc}")
                return status, False
            self._recovered()
            self._apply(config)
            return status, True
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            # 401/403/404: a wrong or missing key, or a service without a flag router. Retrying with
            # backoff lets a fixed deployment recover without a restart; logged once, as an error.
            self._report(
                f"shiprail refused the config of {self.service} ({status}): {_detail(response)}", level=logging.ERROR
            )
        else:
            self._report(f"shiprail could not serve the config of {self.service} ({status}): {_detail(response)}")
        return status, False

    def _apply(self, config: dict[str, Any]) -> None:
        """Swap in ``config`` and tell on_change when it differs from the applied one."""
        old = self._snap.config
        # One reference assignment: concurrent variant() calls see the old snapshot or the new one.
        self._snap = _Snapshot(config)
        self._ready.set()
        if config == old:
            return
        log.info(
            "shiprail SDK for %s applied revision %d: weight %g (%s -> %s)",
            self.service,
            config["revision"],
            config["weight"],
            config["stable"],
            config["canary"],
        )
        for listener in list(self._listeners):
            try:
                listener(dict(config))
            except Exception:  # the callback is the app's; its failure must not stop the polling
                log.exception("an on_change callback of the shiprail SDK for %s failed", self.service)

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Also call ``listener`` with a copy of each newly applied config (as ``on_change`` is)."""
        self._listeners.append(listener)

    def _report(self, problem: str, level: int = logging.WARNING) -> None:
        """Log a fetch problem the first time it happens in a row; repeats go to debug."""
        log.log(level if problem != self._failing else logging.DEBUG, "%s", problem)
        self._failing = problem

    def _recovered(self) -> None:
        if self._failing is not None:
            log.info("shiprail SDK for %s reaches shiprail again", self.service)
            self._failing = None

    def _trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore trace hook: remember the long-poll's sockets, for close() to shut them down."""
        if event in _STREAM_EVENTS and info.get("return_value") is not None:
            self._streams.append(info["return_value"])

    def _poll_loop(self) -> None:
        failures = 0  # failed fetches in a row
        while not self._stop.is_set():
            started = time.monotonic()
            before = (self._snap.revision, self.ready)
            try:
                _, usable = self._poll()
            except Exception:  # never let the thread die: the app would silently freeze on a config
                if not self._stop.is_set():  # closed under it: the pools it used are gone
                    log.exception("the shiprail SDK for %s failed to poll", self.service)
                usable = False
            if usable:
                failures = 0
                # A cycle that brought nothing new (a 304 with poll_wait 0, or a server that ignores
                # If-None-Match) must not turn into a busy loop: such cycles last SDK_RETRY_SECONDS.
                # The first fetch (revision 0 included) is news: the long-poll starts right after it.
                if (self._snap.revision, self.ready) == before:
                    elapsed = time.monotonic() - started
                    if before[1] and elapsed < self.poll_wait - SDK_RETRY_SECONDS:
                        # A long-poll let go early with nothing new: serve is shutting down, and
                        # answers every SDK it held at that instant. Ask again after a jittered
                        # pause, not all of them at once (on the other serves of a rolling restart).
                        self._stop.wait(next_retry_delay(1, self._retry_random))
                    else:
                        self._stop.wait(max(0.0, SDK_RETRY_SECONDS - elapsed))
            else:
                failures += 1
                self._stop.wait(next_retry_delay(failures, self._retry_random))

    # --- outcomes ----------------------------------------------------------------------------------

    def record(self, variant_or_version: str, ok: bool, latency_s: float) -> None:
        """Count one request's outcome: "stable"/"canary" (the current config's versions) or a version.

        Thread-safe and cheap (a few increments under a lock); posted in batches by the flusher thread
        or ``flush()``. An outcome whose version is unknown (no config yet), or recorded after
        ``close()``, is dropped, counted in ``dropped``.
        """
        if self._asleep:
            self._wake()
        snap = self._snap
        if variant_or_version == STABLE:
            version = snap.stable_version
        elif variant_or_version == CANARY:
            version = snap.canary_version
        else:
            version = variant_or_version
        if not 0 <= latency_s < math.inf:  # NaN, negative or infinite: no bucket holds it
            with self._lock:
                self.dropped += 1
            return
        # First upper bound >= latency; len(LATENCY_BUCKETS) is "+Inf".
        slot = 2 + bisect_left(LATENCY_BUCKETS, latency_s)
        with self._lock:
            if version is None or self._closed:  # after close() no flush comes to post it
                self.dropped += 1
                return
            counts = self._pending.get(version)
            if counts is None:
                # Checked once per version and batch: serve refuses a whole batch naming a version it
                # cannot store, which would lose every other version's outcomes with it.
                if len(self._pending) >= MAX_PENDING_VERSIONS or not sendable_version(version):
                    self.dropped += 1
                    return
                counts = self._pending[version] = [0] * _COUNT_SLOTS
            counts[0] += 1
            if not ok:
                counts[1] += 1
            counts[slot] += 1

    def pending_metrics(self) -> dict[str, Any]:
        """The metrics payload the next flush would post (``{"client": ..., "versions": {...}}``)."""
        with self._lock:
            batch = {version: list(counts) for version, counts in self._pending.items()}
        return self._payload(batch)

    def _payload(self, batch: Mapping[str, list[int]]) -> dict[str, Any]:
        versions = {
            version: {
                "requests": counts[0],
                "errors": counts[1],
                "latency": {key: n for key, n in zip(_LATENCY_KEYS, counts[2:], strict=True) if n},
            }
            for version, counts in batch.items()
        }
        return {"client": self.client_id, "versions": versions}

    def flush(self) -> bool:
        """Post the pending outcomes now; True when they were accepted (or there were none).

        Each batch carries an ``Idempotency-Key``. On a network error, a 5xx, 408 or 429 the batch is
        kept and re-sent as it was, with the same key, before newer outcomes (bounded by
        MAX_CARRIED_OUTCOMES): a batch serve stored but whose answer was lost is not counted twice.
        Any other refusal (422, 401, ...) would fail again, so that batch is dropped.
        """
        if self._asleep:
            self._wake()
        return self._flush(None)

    def _flush(self, deadline: float | None) -> bool:
        """``flush()``, given up at ``deadline`` (monotonic; None: each post has the client's timeout)."""
        if self._http is None:
            return False
        if not self._flush_lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            return False  # the flusher's post is still under way at the deadline: it keeps its batch
        try:
            if self._unsent is not None:
                key, batch = self._unsent
                if not self._post(key, batch, deadline):
                    return False
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return True
            return self._post(f"{self.client_id}-{next(self._batch_seq)}", batch, deadline)
        finally:
            self._flush_lock.release()

    def _post(self, key: str, batch: dict[str, list[int]], deadline: float | None = None) -> bool:
        """Post one batch under ``key``; keep it for a retry when that may succeed. True when accepted."""
        assert self._http is not None
        self._unsent = None
        try:
            response = self._http.post(
                self._metrics_url,
                json=self._payload(batch),
                headers={"Idempotency-Key": key},
                timeout=_until(deadline),
            )
        except (httpx.HTTPError, RuntimeError) as exc:
            self._flush_failed(f"cannot post outcomes to shiprail at {self.url}: {exc or type(exc).__name__}")
            self._keep(key, batch)
            return False
        if response.is_success:
            if self._flush_failing:
                log.info("shiprail SDK for %s posts outcomes again", self.service)
                self._flush_failing = False
            return True
        problem = f"shiprail refused the outcomes of {self.service} ({response.status_code}): {_detail(response)}"
        if response.status_code >= 500 or response.status_code in _RETRYABLE_4XX:
            self._flush_failed(problem)
            self._keep(key, batch)
        else:
            log.error("%s; dropping %d outcomes", problem, sum(counts[0] for counts in batch.values()))
            with self._lock:
                self.dropped += sum(counts[0] for counts in batch.values())
        return False

    def _flush_failed(self, problem: str) -> None:
        log.log(logging.DEBUG if self._flush_failing else logging.WARNING, "%s", problem)
        self._flush_failing = True

    def _keep(self, key: str, batch: dict[str, list[int]]) -> None:
        """Keep a batch that failed to post for the next flush, unless it and the backlog are too many."""
        outcomes = sum(counts[0] for counts in batch.values())
        with self._lock:
            backlog = sum(counts[0] for counts in self._pending.values())
            # After close() (a post it could not wait for): no flush will come to send it again.
            dropped = backlog + outcomes > MAX_CARRIED_OUTCOMES or self._closed
            if dropped:
                self.dropped += outcomes
            else:
                self._unsent = (key, batch)
        if dropped:
            why = "the client is closed" if self._closed else "backlog full"
            log.warning("shiprail SDK for %s dropped %d unposted outcomes (%s)", self.service, outcomes, why)

    def _flush_loop(self) -> None:
        while not self._stop.wait(SDK_FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # keep flushing later batches whatever happened to this one
                log.exception("the shiprail SDK for %s failed to post outcomes", self.service)

    # --- signals -----------------------------------------------------------------------------------

    def signal(
        self, name: str, count: float = 1, version: str | None = None, note: str = "", key: str | None = None
    ) -> dict[str, Any]:
        """Push a signal (a complaint, an alert, a count) for the service; the stored signal as JSON.

        ``key``: an idempotency key of the caller's, per signal. Calling again with the same key
        (a retry after a timeout) returns the signal stored the first time; nothing is counted twice.
        Raises ShiprailSdkError when shiprail cannot be reached or answers anything but 2xx.
        """
        if self._asleep:
            self._wake()
        if self._http is None:
            raise ShiprailSdkError(f"the client for {self.service} is offline (built from a config) and cannot signal")
        if isinstance(count, float) and not math.isfinite(count):
            # JSON has no NaN or infinity: httpx would raise its own ValueError from the encoder.
            raise ShiprailSdkError(
                f"cannot send the signal {name!r} for {self.service}: count {count!r} is not a finite number above 0"
            )
        body = {"name": name, "count": count, "version": version, "note": note}
        headers = {} if key is None else {"Idempotency-Key": key}
        try:
            response = self._http.post(self._signals_url, json=body, headers=headers)
        except (TypeError, ValueError) as exc:  # a field JSON cannot carry, a key no header can (not ASCII)
            raise ShiprailSdkError(f"cannot send the signal {name!r} for {self.service}: {exc}") from exc
        except (httpx.HTTPError, RuntimeError) as exc:
            raise ShiprailSdkError(
                f"cannot reach shiprail at {self.url} to send the signal {name!r}: {exc or type(exc).__name__}"
            ) from exc
        if not response.is_success:
            raise ShiprailSdkError(
                f"shiprail refused the signal {name!r} for {self.service} ({response.status_code}): {_detail(response)}"
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise ShiprailSdkError(f"shiprail answered the signal {name!r} with something other than JSON") from exc
        if not isinstance(answer, dict):
            raise ShiprailSdkError(f"shiprail answered the signal {name!r} with a {type(answer).__name__}")
        return answer

    # --- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the background threads, post the pending outcomes once and tell serve the SDK leaves,
        all within SDK_CLOSE_SECONDS whatever the client is doing (serve down, hung or unreachable).

        Idempotent. variant() keeps answering from the last config afterwards.
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._asleep:  # a forked child that never used the client: nothing started, nothing to post
            self._asleep = False
            return
        deadline = time.monotonic() + SDK_CLOSE_SECONDS
        # The poll thread may sit in a 25 s long-poll: closing the httpx client would not wake its
        # blocking read, shutting the socket down does. A thread in a retry's wait wakes on _stop.
        self._interrupt_poll()
        posted = self._http is None or self._flush(deadline)  # from_config(): nothing to post to
        self._leave(deadline)
        for thread in self._threads:
            if thread is threading.current_thread():
                continue  # close() from a callback (on_change, an OpenFeature handler): it ends on return
            while thread.is_alive() and time.monotonic() < deadline:
                self._interrupt_poll()  # again, in case it had just opened a new connection
                thread.join(0.02)
            if thread.is_alive():
                # A connect or a post that serve does not answer: the daemon thread ends by itself
                # at its request's timeout, and applies nothing after close().
                log.debug("the %s thread is still in a request at close(); it ends by itself", thread.name)
        if not posted:
            with self._lock:
                # Taken out as they are counted: a flush still under way (close gave up on it) that
                # ends later must not post them through the closed client and count them again.
                pending, self._pending = self._pending, {}
                unsent = sum(counts[0] for counts in pending.values())
                if self._unsent is not None:
                    unsent += sum(counts[0] for counts in self._unsent[1].values())
                self.dropped += unsent
            if unsent:
                log.warning(
                    "shiprail SDK for %s closed without posting %d outcomes: shiprail at %s did not take them "
                    "within %gs",
                    self.service,
                    unsent,
                    self.url,
                    SDK_CLOSE_SECONDS,
                )
        for http in (self._poll_http, self._http):
            if http is not None:
                http.close()

    def _leave(self, deadline: float) -> None:
        """Tell shiprail this SDK is closing, so a weight change no longer waits for its acknowledgement.

        Without it, every change in the minute after an app stopped (a restart, a scale-down) took
        the router's whole wait and was reported unconfirmed, naming the SDK that was gone. Best
        effort, within what is left of close()'s budget: a minute later the SDK is out of contact anyway.
        """
        if self._http is None or not self._ready.is_set() or deadline - time.monotonic() < _LEAST_REQUEST_SECONDS:
            return  # never heard from serve: nothing acknowledged to take back, and serve may be hung
        try:
            # Built now, not at construction: a forked child has an id of its own.
            url = f"{self.url}/api/v1/sdk/{self.service}/clients/{self.client_id}"
            self._http.delete(url, timeout=_until(deadline))
        except (httpx.HTTPError, RuntimeError) as exc:
            log.debug("could not tell shiprail at %s that this SDK is closing: %s", self.url, exc)

    def _interrupt_poll(self) -> None:
        for stream in list(self._streams):
            try:
                sock = stream.get_extra_info("socket")
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except Exception:  # already closed, or not a socket stream: nothing to interrupt
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, service={self.service!r}, revision={self.revision})"
