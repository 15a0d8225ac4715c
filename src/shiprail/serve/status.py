"""``shiprail serve``'s status pages and release API, for people and dashboards that read.

- ``GET /releases``: the releases under way (where each stands) and the latest that ended;
- ``GET /releases/{id}``: one release, live, over the sections of its release package;
- ``GET /api/v1/releases`` (``?status=``) and ``GET /api/v1/releases/{id}``: the JSON of
  ``shiprail release list --json`` and ``release show --json``.

Read-only, and closed unless the environment variable ``SHIPRAIL_STATUS_TOKEN`` is set where serve
runs: a reader sends it as ``Authorization: Bearer <token>``, or as the password of HTTP Basic
authentication (any user name), which a browser asks for by itself. Release records name people,
plans and reasons: they are not for whoever can reach the port.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from shiprail import defaults
from shiprail.domain.states import Status
from shiprail.errors import NotFound
from shiprail.export.record import load_record
from shiprail.releases import Releases
from shiprail.serve import pages
from shiprail.store.models import Retrospective

F = TypeVar("F", bound=Callable[..., Any])

OFF = (
    f"the status pages are off: set {defaults.STATUS_TOKEN_ENV} where `shiprail serve` runs, "
    "and send it as `Authorization: Bearer <token>` (a browser asks for it as the password)"
)
ASK = f"send the status token (${defaults.STATUS_TOKEN_ENV}) as `Authorization: Bearer <token>`"
BROWSER_ASK = {"WWW-Authenticate": 'Basic realm="shiprail status", charset="UTF-8"'}
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No status token sent."},
    403: {"description": "The token sent is not the status token."},
    404: {"description": f"The status pages are off ({defaults.STATUS_TOKEN_ENV} unset), or no such release."},
    503: {"description": "The store cannot be reached right now; try again."},
}


STORE_AWAY_PAGE = "shiprail serve cannot reach its store right now; this page reloads by itself"


def is_page(request: Request) -> bool:
    """Whether ``request`` was routed to one of the status pages (a person's browser reads it)."""
    return getattr(request.scope.get("endpoint"), PAGE_MARK, False) is True


def store_away_page(request: Request, now: datetime) -> HTMLResponse:
    """A page's answer while the store cannot be reached: 503, and a page that reloads itself, so a
    wall screen that met a database restart comes back by itself instead of showing JSON for good."""
    html = pages.message_page(
        "Store unavailable", STORE_AWAY_PAGE, now, _root(request), refresh=defaults.STATUS_REFRESH_SECONDS
    )
    return page_response(html, 503, {"Retry-After": "1", "Cache-Control": "no-store"})


def page_response(html: str, status: int, headers: dict[str, str]) -> HTMLResponse:
    """A page, with the Content-Security-Policy that lets it load nothing but its own style."""
    return HTMLResponse(
        html, status_code=status, headers=headers | {"Content-Security-Policy": pages.CONTENT_SECURITY_POLICY}
    )


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + "/"


PAGE_MARK = "_shiprail_status_page"


def _page(endpoint: F) -> F:
    setattr(endpoint, PAGE_MARK, True)
    return endpoint


def sent_token(authorization: str | None) -> str | None:
    """The token in an ``Authorization`` header: a bearer token, or a Basic password; None for neither."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon and password else None
    return None


def add_status_routes(app: FastAPI, releases: Releases, token: str | None) -> None:
    """Add the status pages and the release API to ``app``; ``token`` None leaves them answering 404."""

    def refusal(authorization: str | None, browser: bool) -> tuple[int, str, dict[str, str]] | None:
        """Why a reader is refused (status, sentence, headers); None to let them read."""
        if token is None:
            return 404, OFF, {}
        sent = sent_token(authorization)
        if sent is None:
            return 401, ASK, BROWSER_ASK if browser else {"WWW-Authenticate": "Bearer"}
        if not hmac.compare_digest(sent.encode(), token.encode()):
            # A browser asks again (its user mistyped); an API client is told its token is wrong.
            if browser:
                return 401, "that is not the status token; sign in again with it as the password", BROWSER_ASK
            return 403, f"the token sent is not the status token (${defaults.STATUS_TOKEN_ENV})", {}
        return None

    def reader(authorization: str | None) -> None:
        refused = refusal(authorization, browser=False)
        if refused is not None:
            raise HTTPException(refused[0], refused[1], headers=refused[2] or None)

    def page_refusal(request: Request, authorization: str | None) -> HTMLResponse | None:
        refused = refusal(authorization, browser=True)
        if refused is None:
            return None
        code, sentence, headers = refused
        title = {401: "Sign in", 403: "Refused", 404: "Not found"}.get(code, "Refused")
        html = pages.message_page(title, sentence, releases.clock.now(), _root(request))
        return page_response(html, code, headers)

    # HEAD answers as GET (uptime monitors, balancers' checks, `curl -I`), left out of the OpenAPI
    # description, which would name one operation twice.
    @app.head("/api/v1/releases", include_in_schema=False)
    @app.get("/api/v1/releases", responses=REFUSALS)
    def list_releases(
        status: Annotated[Status | None, Query(description="Only releases in this state.")] = None,
        service: Annotated[str | None, Query(description="Only releases of this service.", max_length=200)] = None,
        limit: Annotated[
            int | None, Query(description="Only the newest this many.", ge=1, le=defaults.STATUS_API_MAX_LIMIT)
        ] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> list[dict[str, Any]]:
        """Releases, newest first: the rows of ``shiprail release list --json``.

        ``limit`` keeps a dashboard that polls from reading every release ever made at each look.
        """
        reader(authorization)
        views = releases.list(status.value if status else None, service=service, limit=limit)
        return [v.to_json(full=False) for v in views]

    @app.head("/api/v1/releases/{release_id}", include_in_schema=False)
    @app.get("/api/v1/releases/{release_id}", responses=REFUSALS)
    def show_release(release_id: str, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """One release as ``shiprail release show --json`` prints it."""
        reader(authorization)
        try:
            return releases.get(release_id).to_json()
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.head("/", include_in_schema=False)
    @app.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{_root(request)}releases", status_code=307)

    @app.head("/releases", include_in_schema=False)
    @app.get("/releases", response_class=HTMLResponse, responses=REFUSALS)
    @_page
    def releases_page(request: Request, authorization: Annotated[str | None, Header()] = None) -> HTMLResponse:
        """The releases under way and the latest that ended, as a page that reloads itself."""
        if (refused := page_refusal(request, authorization)) is not None:
            return refused
        live, ended, ended_total = releases.overview(defaults.STATUS_ENDED_SHOWN)
        html = pages.releases_page(live, ended, ended_total, releases.clock.now(), _root(request))
        return page_response(html, 200, {"Cache-Control": "no-store"})

    @app.head("/releases/{release_id}", include_in_schema=False)
    @app.get("/releases/{release_id}", response_class=HTMLResponse, responses=REFUSALS)
    @_page
    def release_page(
        release_id: str, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> HTMLResponse:
        """One release: where it stands, its last analysis, and its release package's sections."""
        if (refused := page_refusal(request, authorization)) is not None:
            return refused
        now = releases.clock.now()
        try:
            # One snapshot: the view, the record and the retrospective as of one moment.
            with releases.store.snapshot() as s:
                view = releases.view_in(s, release_id)
                record = load_record(s, release_id)
                row = s.get(Retrospective, release_id) if record.ended else None
                retrospective = row.body if row is not None else None
        except NotFound as exc:
            return page_response(pages.message_page("Not found", str(exc), now, _root(request)), 404, {})
        html = pages.release_page(view, record, retrospective, now, _root(request))
        return page_response(html, 200, {"Cache-Control": "no-store"})
