"""``shiprail serve``'s HTTP API: rollout configs for SDKs, pushed outcomes and signals, health.

The protocol is in docs/flags.md. Every SDK route names a service with a ``flag`` router and
carries that service's SDK key (``Authorization: Bearer <key>``); the key is the value of the
environment variable the service file's ``router.sdk_key_env`` names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import queue
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shiprail import defaults
from shiprail.clock import Clock
from shiprail.controller.health import ControllerHealth
from shiprail.domain import rules
from shiprail.errors import BadInput
from shiprail.providers import push
from shiprail.providers.common import one_line
from shiprail.releases import SYSTEM_ACTOR_PREFIX
from shiprail.serve.hub import FlagHub
from shiprail.serve.status import add_status_routes, is_page, store_away_page
from shiprail.store.db import Store, store_error_text
from shiprail.text import is_digits

if TYPE_CHECKING:
    from shiprail.releases import Releases

log = logging.getLogger(__name__)

API = "/api/v1"
# FastAPI's detail for a body it cannot decode at all.
UNPARSABLE = "There was an error parsing the body"
# Starlette's detail for a path no route has.
NO_ROUTE = "Not Found"
SEND_JSON = "send a JSON object with Content-Type: application/json"
# What FastAPI's errors about the body as a whole mean to the sender.
BODY_ERRORS = {
    "json_invalid": f"the body is not valid JSON; {SEND_JSON}",
    "missing": f"the request has no body; {SEND_JSON}",
    "dict_type": f"the body is not a JSON object; {SEND_JSON}",
}


class Error(BaseModel):
    """Every refusal's body, for the OpenAPI description: one sentence saying what to do."""

    detail: str


# The refusals of the SDK routes, in the order docs/flags.md checks them.
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Error, "description": "No `Authorization: Bearer <key>` header."},
    403: {"model": Error, "description": "serve has no key for the service, or the key sent is not it."},
    404: {"model": Error, "description": "The service has no flag router here (told to a holder of an SDK key)."},
    422: {"model": Error, "description": "A parameter, header or body field is not what is expected."},
    503: {"model": Error, "description": "The store cannot be reached right now; try again."},
}
# And of those that read a body.
BODY_REFUSALS: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    413: {"model": Error, "description": f"The body is more than {defaults.SERVE_MAX_BODY_BYTES} bytes."},
}


@dataclass(frozen=True)
class SdkService:
    """A service SDKs may ask about: its name, the variable holding its key, and the key (None: unset)."""

    name: str
    key_env: str
    key: str | None


# How often the service lookup thread looks whether serve is stopping, while no name waits.
_LOOKUP_IDLE_SECONDS = 1.0

# Longer revisions than any store holds (a signed 64-bit integer has 19 digits) are not ours.
MAX_REVISION_DIGITS = 18


class BodyLimit:
    """Reads a request's body before the app does, and answers 413 once it passes ``limit`` bytes.

    Chunked uploads carry no Content-Length, so the bytes are counted as they arrive; a body
    within the limit is handed on to the app as one message. Requests that carry no body
    (GET, HEAD: the long-polls) pass straight through, so a client's disconnect still reaches them.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            # Said up front: refused before a byte is read (no 100 Continue invites the upload).
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the body is more than {self.limit} bytes; at most {self.limit} are read"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def _check_client(where: str, client: str | None) -> None:
    """422 when an SDK instance's id holds a control character: it is stored, and named among laggards.

    PostgreSQL cannot store a NUL at all (that was a 500), and ``/metrics`` already refuses the same id.
    """
    if client and any(unicodedata.category(ch) == "Cc" for ch in client):
        raise HTTPException(422, f"{where} holds a control character; send the SDK instance's id as printable text")


def _as_read(name: str) -> str:
    """``name`` as a reader sees it: invisible characters (zero-width spaces, soft hyphens, a
    Hangul filler: ``rules.visible``) left out, full-width letters as letters
    (NFKC), without case or spaces around it."""
    return rules.visible(unicodedata.normalize("NFKC", name)).strip().casefold()


def _same_key(sent: str, key: str) -> bool:
    """Whether the key sent is ``key``, compared in constant time."""
    return hmac.compare_digest(sent.encode(), key.encode())


def _not_a_key(service: str) -> str:
    """The refusal of a key that is no SDK key of this serve: what to fix, naming none of its services' variables."""
    return (
        f"the key sent is not the SDK key of {one_line(repr(service), 60)} here; give the app the value of the "
        "variable its service file's `router.sdk_key_env` names where shiprail serve runs "
        f"(default {defaults.SDK_KEY_ENV})"
    )


def _bearer(authorization: str | None) -> str | None:
    """The key an ``Authorization: Bearer <key>`` header sends; None for none."""
    # The scheme is case-insensitive (RFC 9110 §11.1): "bearer k" is as good as "Bearer k".
    scheme, _, sent = (authorization or "").partition(" ")
    return sent if scheme.lower() == "bearer" and sent else None


def _etag_revision(value: str | None) -> int | None:
    """The revision an ``If-None-Match`` header names; None for none or one that is not ours."""
    if not value:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    ours = 0 < len(text) <= MAX_REVISION_DIGITS and is_digits(text)
    return int(text) if ours else None


def _join(thread: threading.Thread, timeout_s: float, hurry: threading.Event) -> None:
    """Wait for ``thread`` to end, up to ``timeout_s``, and no longer once ``hurry`` is set (it is a daemon)."""
    deadline = time.monotonic() + timeout_s
    while thread.is_alive() and not hurry.is_set() and time.monotonic() < deadline:
        thread.join(0.05)


def _store_away_json() -> JSONResponse:
    """503 for an SDK or script while the store cannot be reached: it keeps what it holds and asks again."""
    detail = "shiprail serve cannot reach its store right now; try again"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


def create_app(
    store: Store,
    clock: Clock,
    services: Mapping[str, SdkService],
    *,
    lookup: Callable[[str], SdkService | None] | None = None,
    controller: Callable[[threading.Event], None] | None = None,
    notifier: Callable[[threading.Event], None] | None = None,
    health: ControllerHealth | None = None,
    flag_watch_s: float = defaults.FLAG_WATCH_SECONDS,
    people: Collection[str] | Callable[[], Collection[str]] = (),
    releases: Releases | None = None,
    status_token: str | None = None,
) -> FastAPI:
    """The ASGI app. ``lookup`` finds a service that appeared after start; ``controller`` runs in a thread.

    ``flag_watch_s``: how often the flag hub looks for publishes by other processes.
    ``controller(stop)`` is the reconcile loop: it runs from startup until ``stop`` is set at shutdown.
    ``notifier(stop)`` (issue #6: communication plans) runs the same way, in a thread of its own.
    ``health``: the controller's passes, for /healthz (a stuck loop is unhealthy) and /metrics.
    ``people``: the names in shiprail.yaml, which a signal's ``as`` may not claim: an SDK key speaks
    for its service, and the audit trail must not name a person who did not act. A callable is
    asked at each signal: the people of shiprail.yaml as the process has (re)loaded it.
    ``releases``: the status pages and release API read them (``shiprail.serve.status``), open to
    readers with ``status_token`` (None: they answer 404 saying how to turn them on).
    """

    def persons() -> set[str]:
        return {_as_read(name) for name in (people() if callable(people) else people)}

    known: dict[str, SdkService] = dict(services)
    hub = FlagHub(store, clock, known, watch_s=flag_watch_s)
    stop = threading.Event()
    # Set by a second Ctrl-C (serve.server.Server): shutdown no longer waits for the controller and notifier.
    hurry = threading.Event()
    state: dict[str, Any] = {"controller": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(hub.start, asyncio.get_running_loop())
        thread = None
        if controller is not None:
            thread = threading.Thread(target=controller, args=(stop,), name="shiprail-controller", daemon=True)
            thread.start()
            state["controller"] = thread
        # Notifications (issue #6): delivered off the controller's path, stopped with it.
        notify_thread = None
        if notifier is not None:
            notify_thread = threading.Thread(target=notifier, args=(stop,), name="shiprail-notifier", daemon=True)
            notify_thread.start()
        try:
            yield
        finally:
            stop.set()
            await run_in_threadpool(hub.stop)
            for running in (thread, notify_thread):
                if running is not None:
                    await run_in_threadpool(_join, running, 10, hurry)

    app = FastAPI(
        title="shiprail",
        version="1",
        lifespan=lifespan,
        docs_url=f"{API}/docs",
        redoc_url=f"{API}/redoc",
        swagger_ui_oauth2_redirect_url=None,  # SDKs send a bearer key; no OAuth2 page outside /api/v1/
        openapi_url=f"{API}/openapi.json",
    )
    app.state.hub = hub
    app.state.hurry = hurry

    # Names serve did not know, asked about by a caller holding none of its keys: looked up by one
    # thread off the requests' path (at most SERVE_LOOKUPS_QUEUED waiting; more are dropped, and an
    # SDK asks again), so that the time of a 403 does not tell which services exist.
    unknown_names: queue.Queue[str] = queue.Queue(maxsize=defaults.SERVE_LOOKUPS_QUEUED)
    looker_lock = threading.Lock()

    def discover(service: str) -> SdkService | None:
        """``service`` as its file says now (a file that appeared after start); remembered when found."""
        assert lookup is not None
        found = lookup(service)
        if found is not None:
            known[service] = found
            hub.add_service(service)
        return found

    def look_up_names() -> None:
        while not stop.is_set():
            try:
                service = unknown_names.get(timeout=_LOOKUP_IDLE_SECONDS)
            except queue.Empty:
                continue
            try:
                if service not in known:
                    discover(service)
            except (OperationalError, InterfaceError, PoolTimeout) as exc:  # as a request's: one line
                log.warning("cannot look up the service %r an SDK asked about: %s", service, store_error_text(exc))
            except Exception:  # a bug; the next name must still be looked up
                log.exception("cannot look up the service %r an SDK asked about", service)

    def look_up_later(service: str) -> None:
        with looker_lock:
            if state.get("looker") is None:
                state["looker"] = threading.Thread(target=look_up_names, name="shiprail-service-lookup", daemon=True)
                state["looker"].start()
        with contextlib.suppress(queue.Full):
            unknown_names.put_nowait(service)

    def holds(sent: str) -> bool:
        """Whether ``sent`` is the SDK key of a service serve knows."""
        return any(other.key is not None and _same_key(sent, other.key) for other in list(known.values()))

    def holds_a_key(authorization: str | None) -> bool:
        sent = _bearer(authorization)
        return sent is not None and holds(sent)

    def authorize(service: str, authorization: str | None) -> SdkService:
        """The service an SDK key may ask about, or the refusal: 401 without a key, whatever the
        service; then, to a caller holding no key of this serve, one 403 whether the service exists
        or not, in the same time (a name serve does not know is looked up off the request's path,
        found for the SDK's next try), so that no one without a key learns which services serve has;
        to a holder of one (an app misconfigured), the 404 or 403 that says why."""
        sent = _bearer(authorization)
        if sent is None:
            raise HTTPException(401, f"send the SDK key of {one_line(service, 60)} as `Authorization: Bearer <key>`")
        found = known.get(service)
        if found is not None and found.key is not None and _same_key(sent, found.key):
            return found
        holder = holds(sent)
        if found is None and lookup is not None:
            if holder:
                found = discover(service)
            else:  # perhaps a service whose file appeared after start, with a key of its own
                look_up_later(service)
        if not holder:
            raise HTTPException(403, _not_a_key(service))
        if found is None:
            raise HTTPException(
                404,
                f"service {one_line(repr(service), 60)} has no flag router here; "
                "give its service file `router: {type: flag}`",
            )
        if found.key is None:
            raise HTTPException(403, f"shiprail serve has no SDK key for {service}: set {found.key_env} where it runs")
        raise HTTPException(403, f"the SDK key sent for {service} is not its key (${found.key_env})")

    app.add_middleware(BodyLimit, limit=defaults.SERVE_MAX_BODY_BYTES)
    if releases is not None:
        add_status_routes(app, releases, status_token)

    # HEAD answers as GET; it is left out of the OpenAPI description, which would name one operation twice.
    # Async, on the event loop and not in the worker threads: those may all be waiting on the store (a
    # locked table, a used-up pool), and a health check that waited with them would take serve out.
    @app.head("/healthz", include_in_schema=False)
    @app.get("/healthz", responses={503: {"description": "The controller or the flag hub has stopped working."}})
    async def healthz() -> JSONResponse:
        """200 while serving: the flag hub's watcher lives (and the controller thread, when it runs one); else 503."""
        thread = state["controller"]
        # A controller thread that lives but no longer finishes passes (a hung call, a deadlock) is
        # as unhealthy as a dead one, as `shiprail controller --metrics-port`'s /healthz says.
        alive = None if thread is None else thread.is_alive() and (health is None or health.status()[0])
        watching = hub.watching()
        ok = alive is not False and watching
        return JSONResponse({"ok": ok, "controller": alive, "flag_hub": watching}, status_code=200 if ok else 503)

    @app.head("/metrics", include_in_schema=False)
    @app.get(
        "/metrics",
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus' text exposition format."},
            404: {"model": Error, "description": "This serve runs no controller (--no-controller)."},
        },
        response_class=Response,
    )
    async def prometheus_metrics() -> Response:  # in memory, like /healthz: on the event loop
        """The inner controller's Prometheus metrics: its loop and each release it holds."""
        if health is None:
            raise HTTPException(
                404, "this serve runs no controller (--no-controller): scrape `shiprail controller --metrics-port`"
            )
        return Response(generate_latest(health.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        f"{API}/sdk/{{service}}/config",
        responses={
            **REFUSALS,
            304: {"description": "`If-None-Match` names the current revision, and it did not change within `wait`."},
        },
    )
    async def config(
        service: str,
        wait: Annotated[float, Query(ge=0, le=defaults.FLAG_MAX_WAIT_SECONDS)] = 0,
        authorization: Annotated[str | None, Header()] = None,
        if_none_match: Annotated[str | None, Header()] = None,
        x_shiprail_client: Annotated[str | None, Header(max_length=120)] = None,
    ) -> Response:
        """The service's rollout config; held up to ``wait`` seconds while it equals ``If-None-Match``."""
        if service not in known and holds_a_key(authorization):
            await run_in_threadpool(authorize, service, authorization)  # it may read the service's file
        else:
            authorize(service, authorization)
        _check_client("header.x-shiprail-client", x_shiprail_client)
        if not hub.loaded:
            # Started while the store was away: no config is known yet, and an empty one would
            # take every user off the canary. The SDK keeps what it holds and asks again.
            return _store_away_json()
        have = _etag_revision(if_none_match)
        current = hub.current(service)
        if have is not None and have > current.revision:
            # Newer than this process holds: most likely another serve's publish it has not seen
            # yet. Look now and hold the SDK (within `wait`) until it has caught up, rather than
            # send it back an older config.
            current = await hub.catch_up(service, have, wait)
            if current.revision < have and (hub.closing or not hub.store_reached):
                # Shutting down, or cut off from the store (another serve handed out a revision this
                # one cannot see, perhaps a rollback): the SDK keeps what it holds, never an older one.
                return Response(status_code=304, headers={"ETag": f'"{have}"', "Cache-Control": "no-cache"})
            if current.revision < have:
                # Never published here (a store that was recreated, a client that is wrong): no
                # acknowledgement to record, and the SDK gets the config there is.
                headers = {"ETag": current.etag, "Cache-Control": "no-cache"}
                return JSONResponse(current.to_json(), headers=headers)
            wait = 0  # caught up: answer now, within the time the SDK gave
        hub.seen(service, x_shiprail_client, have or 0)
        # Only an SDK that says what it holds is held: one without a config wants an answer now.
        if have == current.revision and wait > 0:
            current = await hub.wait_change(service, have, wait)
        headers = {"ETag": current.etag, "Cache-Control": "no-cache"}
        if have == current.revision:
            return Response(status_code=304, headers=headers)
        return JSONResponse(current.to_json(), headers=headers)

    @app.post(f"{API}/sdk/{{service}}/metrics", status_code=202, responses=BODY_REFUSALS)
    def metrics(
        service: str,
        batch: Annotated[dict[str, Any], Body()],
        authorization: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Outcomes an SDK batched (requests, errors, latency buckets per version), stored as signals.

        ``Idempotency-Key``: a retry of a batch already stored under that key stores nothing.
        """
        authorize(service, authorization)
        client = batch.get("client")
        if not isinstance(client, str) or not client.strip():
            raise HTTPException(422, "`client` must name the SDK instance that sends the batch")
        versions = batch.get("versions")
        if not isinstance(versions, dict):
            raise HTTPException(422, "`versions` must map each version to its counts")
        unknown = sorted(set(batch) - {"client", "versions"})
        if unknown:
            raise HTTPException(422, f"unknown field {unknown[0]!r} in the batch; send `client` and `versions`")
        try:
            stored = push.record_batch(
                store, clock, service=service, client=client, versions=versions, key=idempotency_key
            )
        except BadInput as exc:
            raise HTTPException(422, str(exc)) from None
        return {"stored": stored}

    @app.delete(f"{API}/sdk/{{service}}/clients/{{client}}", status_code=204, responses=REFUSALS)
    def leave(
        service: str,
        client: Annotated[str, FastApiPath(max_length=120)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """An SDK that is closing (``Client.close()``): no longer in contact, so the next weight
        change does not wait for it and is not reported unconfirmed because of it."""
        authorize(service, authorization)
        _check_client("path.client", client)
        hub.left(service, client)
        return Response(status_code=204)

    @app.post(
        f"{API}/sdk/{{service}}/signals",
        status_code=201,
        responses={**BODY_REFUSALS, 200: {"description": "A retry: the signal stored under its `Idempotency-Key`."}},
    )
    def signals(
        service: str,
        body: Annotated[dict[str, Any], Body()],
        authorization: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Any:
        """A complaint, an alert or a count, as ``shiprail signal`` takes it.

        ``Idempotency-Key``: a retry with the same key answers ``200`` with the signal stored the
        first time (``201``), instead of storing it twice.
        """
        authorize(service, authorization)
        unknown = sorted(set(body) - {"name", "count", "version", "note", "as"})
        if unknown:
            raise HTTPException(422, f"unknown field {unknown[0]!r}; send name, count, version, note and as")
        name, count = body.get("name", ""), body.get("count", 1)
        version, note, actor = body.get("version"), body.get("note", ""), body.get("as", f"sdk:{service}")
        for field, value in (("name", name), ("note", note), ("as", actor)):
            if not isinstance(value, str):
                raise HTTPException(422, f"`{field}` must be a string")
        if version is not None and not isinstance(version, str):
            raise HTTPException(422, "`version` must be a string or null")
        if "as" in body and _as_read(actor) in persons():
            raise HTTPException(
                403,
                f"`as` {actor!r} is a person in shiprail.yaml, and an SDK key speaks for its service, not for a "
                "person: name the system that sent it (e.g. support-desk), or let the person run `shiprail signal`",
            )
        if "as" in body and _as_read(actor).startswith(SYSTEM_ACTOR_PREFIX):
            # shiprail's own actors are trusted without a role check, and the records and the
            # retrospective say shiprail acted: a signal claiming one would be misattributed to it.
            raise HTTPException(
                403,
                f"`as` {actor!r} names shiprail itself (names starting with {SYSTEM_ACTOR_PREFIX!r} are its own), and "
                "an SDK key speaks for its service: name the system that sent it (e.g. support-desk)",
            )
        if "name" not in body:
            raise HTTPException(422, "`name` is required: what is counted, e.g. customer_complaint")
        if name in push.SDK_OUTCOME_SIGNALS:
            # Stored from /metrics only, after its checks (errors and latencies at most the requests,
            # one SDK instance per batch): as a signal, `sdk_errors_total` x1000 from one key rolled
            # back a healthy canary, and `sdk_requests_total` x2**53 hid every error it had.
            raise HTTPException(
                403,
                f"`name` {name!r} is one of the SDK outcomes, which an SDK key posts to "
                f"{API}/sdk/{service}/metrics (client.record()) and serve checks before storing: "
                "name the signal otherwise",
            )
        try:
            record = push.record_signal(
                store,
                clock,
                service=service,
                name=name,
                value=count,
                version=version,
                actor=actor,
                note=note,
                key=idempotency_key,
                fields=push.API_FIELDS,
            )
        except BadInput as exc:
            raise HTTPException(422, str(exc)) from None
        return JSONResponse(record.to_json(), status_code=200 if record.replayed else 201)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One sentence like every other refusal, naming the first bad field.
        first = exc.errors()[0] if exc.errors() else {}
        loc = tuple(first.get("loc", ()))
        if loc[:1] == ("body",) and first.get("type") in BODY_ERRORS:
            return JSONResponse({"detail": BODY_ERRORS[first["type"]]}, status_code=422)
        where = ".".join(str(p) for p in loc if p != "body") or "the request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    # The store is down or restarting, or no connection came free in time: the SDK keeps its outcomes
    # for the next try (any 5xx), and the operator gets one line, not a traceback per request (none
    # while the flag hub's own "cannot reach the store" stands for the outage).
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _store_away(request: Request, exc: Exception) -> Response:
        if hub.store_reached:
            why = store_error_text(exc)
            log.warning("%s %s: cannot reach the store: %s", request.method, request.url.path, why)
        if is_page(request):
            return store_away_page(request, clock.now())
        return _store_away_json()

    # Anything else is a bug: the SDK gets a sentence like every other answer, and uvicorn still
    # logs the traceback (Starlette raises the error again after this answer).
    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        detail = "shiprail serve failed on this request (a bug: its log has the traceback); try again later"
        return JSONResponse({"detail": detail}, status_code=500)

    # Starlette's class, not FastAPI's subclass: FastAPI raises Starlette's for a body it cannot parse.
    @app.exception_handler(StarletteHTTPException)
    async def _detail(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNPARSABLE:
            # FastAPI's answer to a body it could not decode (bad UTF-8, too deep, a 5,000-digit
            # number): bad input like any other, so 422 and a sentence that says what to send.
            return JSONResponse({"detail": BODY_ERRORS["json_invalid"]}, status_code=422)
        if exc.status_code == 404 and exc.detail == NO_ROUTE:
            # Starlette's answer to a path no route has: most often an SDK given a URL with a path
            # (the API root), which it logs as the reason it has no config.
            detail = (
                f"no such path here: {one_line(request.url.path, 200)}; give an SDK shiprail serve's base URL "
                f"(http://HOST:PORT, no {API}), to which it adds {API}/sdk/<service>/config; the API is described "
                f"at {API}/docs"
            )
            return JSONResponse({"detail": detail}, status_code=404)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return app
