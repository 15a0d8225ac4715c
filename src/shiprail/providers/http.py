"""The providers' HTTP helpers: a bounded GET, and why a request failed, in one sentence."""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from shiprail.providers.common import one_line

# The most a provider reads of one answer: a metrics endpoint or a query result above it is a
# mistake (or an attack), and would otherwise be held in memory whole, several times over.
MAX_BODY_BYTES = 32 * 1024 * 1024


class BodyTooLarge(httpx.RequestError):
    """An answer longer than ``MAX_BODY_BYTES``."""


class Redirected(httpx.RequestError):
    """A redirect (HTTP 3xx), which the providers do not follow."""


class Answer(NamedTuple):
    """A whole HTTP answer: its status, headers and body as text."""

    status: int
    headers: httpx.Headers
    text: str


def fetch_text(
    client: httpx.Client,
    url: str,
    *,
    timeout_s: float,
    params: dict[str, str] | None = None,
    limit: int = MAX_BODY_BYTES,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """``method`` (GET) ``url``: (status code, body), the whole answer within ``timeout_s`` (``request_within``).

    A redirect raises ``Redirected``: followed, it would carry the provider's credentials to wherever
    it points (another host), and its body, empty or a login page, read as no data or as a misspelt
    metric. Its message says where it points, without credentials.
    """
    answer = request_within(client, method, url, timeout_s=timeout_s, params=params, headers=headers, limit=limit)
    if 300 <= answer.status < 400:
        location = answer.headers.get("location")
        where = f", a redirect to {shown_url(location)}" if location else ""
        raise Redirected(
            f"answered HTTP {answer.status}{where}, which shiprail does not follow: give the URL it redirects to",
            request=client.build_request(method, url, params=params),
        )
    return answer.status, answer.text


def request_within(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    timeout_s: float,
    params: dict[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    limit: int = MAX_BODY_BYTES,
) -> Answer:
    """One request whose whole answer arrives within ``timeout_s`` and ``limit`` bytes.

    httpx's timeout bounds each step — connecting, waiting for the headers, each read of the
    body — not their sum: headers sent just before the timeout and a body just before the next
    took twice as long, and a server sending a line a second never timed out. So the request runs
    in a thread of its own, and the caller waits for the whole answer until the deadline and no
    longer; past it this raises ``httpx.ReadTimeout`` (past ``limit``, ``BodyTooLarge``). The
    abandoned request reads no further and ends within httpx's own timeouts. The deadline is a
    network timeout, as httpx's own, so it reads the monotonic clock.
    """
    answer: Future[Answer] = Future()
    abandoned = threading.Event()
    # A connection of its own (not one from the pool, not left to it), so that giving up can cut
    # it: a server sending its headers a byte at a time would otherwise hold the thread and the
    # pooled connection for ever, each read within httpx's timeout.
    sent = {**(headers or {}), "Connection": "close"}
    streams: list[Any] = []

    def trace(event: str, info: Mapping[str, Any]) -> None:
        if event in _STREAM_EVENTS:
            streams.append(info["return_value"])
            if abandoned.is_set():
                _cut(streams)

    def run() -> None:
        try:
            answer.set_result(_read(client, method, url, params, sent, content, timeout_s, limit, abandoned, trace))
        except BaseException as exc:  # handed to the caller, who raises it
            answer.set_exception(exc)

    threading.Thread(target=run, name="shiprail-fetch", daemon=True).start()
    try:
        return answer.result(timeout=timeout_s)
    except FutureTimeout:
        abandoned.set()
        _cut(streams)
        request = client.build_request(method, url, params=params)
        raise httpx.ReadTimeout(f"the answer took longer than {timeout_s:g}s", request=request) from None


# httpcore trace events whose return value is the request's network stream.
_STREAM_EVENTS = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})


def _cut(streams: list[Any]) -> None:
    """Shut the request's sockets down: that wakes a read blocked on them (closing would not)."""
    for stream in list(streams):
        with contextlib.suppress(Exception):  # already closed, or not a socket stream
            sock = stream.get_extra_info("socket")
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)


def _read(
    client: httpx.Client,
    method: str,
    url: str,
    params: dict[str, str] | None,
    headers: dict[str, str] | None,
    content: bytes | None,
    timeout_s: float,
    limit: int,
    abandoned: threading.Event,
    trace: Callable[[str, Mapping[str, Any]], None],
) -> Answer:
    """``request_within``'s request, in its thread: stops reading once the caller gave up."""
    deadline = time.monotonic() + timeout_s
    with client.stream(
        method,
        url,
        params=params,
        headers=headers,
        content=content,
        timeout=timeout_s,
        extensions={"trace": trace},
    ) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the answer is longer than {limit / 2**20:g} MiB", request=response.request)
            if abandoned.is_set() or time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"the answer took longer than {timeout_s:g}s", request=response.request)
            chunks.append(chunk)
        encoding = response.charset_encoding or "utf-8"
        try:
            text = b"".join(chunks).decode(encoding, errors="replace")
        except LookupError:  # an unknown charset
            text = b"".join(chunks).decode("utf-8", errors="replace")
        return Answer(response.status_code, response.headers, text)


class Credentials(Protocol):
    """An HTTP provider's credential keys (``providers.HttpCredentials``)."""

    @property
    def bearer_token_env(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password_env(self) -> str | None: ...
    @property
    def headers_env(self) -> Mapping[str, str]: ...


# What a bearer token may hold to be sent as a header: printable ASCII (a space inside is the server's
# to refuse). A basic auth password is sent base64-encoded, so any character goes.
_HEADER_TOKEN = re.compile(r"[\x20-\x7e]+")


def auth_headers(config: Credentials, env: Mapping[str, str], whose: str) -> dict[str, str] | str:
    """The headers ``config`` asks for (``Authorization``, ``headers_env``; none without credentials),
    or why one is missing.

    ``whose`` names them in that sentence ("the Prometheus credentials"). Read from ``env`` (the
    environment) at every request: the secret is never in the service file, which is stored with each
    release, hashed into its approvals and exported in its package.
    """
    wanted = [(f"headers_env.{header}", name, header) for header, name in config.headers_env.items()]
    if config.bearer_token_env:
        wanted.append(("bearer_token_env", config.bearer_token_env, "Authorization"))
    elif config.password_env:
        wanted.append(("password_env", config.password_env, "Authorization"))
    out: dict[str, str] = {}
    for key, name, header in wanted:
        # Trimmed, as Prometheus trims its own credentials files: a secret put in the environment
        # from a file (a Kubernetes secret made --from-file) ends in a newline no header can carry.
        secret = env.get(name, "").strip()
        if not secret:
            return f"{whose} are missing: set {name} where shiprail runs (provider.{key})"
        if key == "password_env":
            out[header] = "Basic " + base64.b64encode(f"{config.username}:{secret}".encode()).decode("ascii")
            continue
        if not _HEADER_TOKEN.fullmatch(secret):
            # Not sent: httpx would refuse the header quoting it whole, into the analysis evidence
            # and the audit trail (or raise on a character beyond ASCII). Name the variable only.
            return (
                f"{whose} cannot be sent: {name} holds a character an HTTP header cannot "
                f"carry (a line break, a control character or one beyond ASCII; provider.{key})"
            )
        out[header] = f"Bearer {secret}" if key == "bearer_token_env" else secret
    return out


# A URL's scheme, authority (user and password before its last @) and path, read as written.
_URL_PARTS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:)?//(?P<authority>[^/?#]*)(?P<path>[^?#]*)")


def shown_url(url: str) -> str:
    """``url`` fit for the audit trail and notifications: without a user, password or query (tokens).

    Never raises: a URL whose port is no number or out of range, or whose [ is unbalanced (a
    server's Location header), is shown as written, without them too.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read for the ValueError a port no URL can hold raises)
    except ValueError:
        written = _URL_PARTS.match(url)
        if written is None:  # no authority: a path, as a relative Location is
            return re.split(r"[?#]", url, maxsplit=1)[0]
        host = written["authority"].rpartition("@")[2]
        return f"{written['scheme'] or ''}//{host}{written['path']}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, bracketed as in the URL: "http://::1:9090" is no URL
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def http_problem(exc: httpx.HTTPError, what: str, timeout_s: float) -> str:
    """One sentence saying why a request to ``what`` (e.g. "Prometheus at http://…") failed."""
    if isinstance(exc, BodyTooLarge):
        return f"{what}: {exc}"
    if isinstance(exc, Redirected):
        return f"{what} {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} did not answer within {timeout_s:g}s"
    if isinstance(exc, httpx.ConnectError):
        reason = str(exc) or type(exc).__name__
        # "[Errno 111] Connection refused" → "connection refused"
        reason = re.sub(r"^\[Errno -?\d+\]\s*", "", reason)
        return f"cannot reach {what}: {one_line(reason).lower()}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"{what}: invalid URL ({one_line(str(exc))})"
    return f"request to {what} failed: {one_line(str(exc) or type(exc).__name__)}"
