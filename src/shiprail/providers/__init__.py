"""Metric providers: where a service's metrics come from, per version and window.

The configuration models live here (the service schema imports them); each provider lives in its
own module (``prometheus``, ``scrape``, ``push``, ``web``) and ``build_provider`` picks one by ``type``.
See docs/providers.md.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from shiprail.schema.base import Duration, StrictModel, without_default

# An environment variable's name, as a shell can set it.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AUTH_KEYS = ("bearer_token_env", "username", "password_env")
# An HTTP header's name (RFC 9110's token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers shiprail sets itself, or that would change what the request is rather than who asks.
_OWN_HEADERS = frozenset({"connection", "content-length", "host", "transfer-encoding"})
# Said of a value where an environment variable's name belongs, without quoting it: it may be the
# secret itself, written in its variable's place, which plan validate would print into a CI log.
_NOT_A_VARIABLE = (
    "{what} is not an environment variable's name (letters, digits and _); give the variable holding the value "
    "where shiprail runs, never the value"
)


# The credential keys of the HTTP providers (prometheus, scrape, web): the names of environment
# variables holding the secrets, never the secrets, as the service file is stored with every release,
# hashed into its approvals and exported in its package.
BearerTokenEnv = Annotated[
    str | None,
    Field(
        description=(
            "The environment variable, where shiprail queries, holding a token sent with every request as "
            "`Authorization: Bearer <token>`."
        )
    ),
]
Username = Annotated[
    str | None,
    Field(description="The user of HTTP basic auth, sent with every request; the password is in `password_env`."),
]
PasswordEnv = Annotated[
    str | None,
    Field(description="The environment variable, where shiprail queries, holding the basic auth password."),
]
HeadersEnv = Annotated[
    dict[str, str],
    Field(
        description=(
            "Headers sent with every request, each naming the environment variable, where shiprail queries, that "
            "holds its value (`X-Api-Key: STATS_API_KEY`), as an API key a metrics service asks for."
        )
    ),
]


class HttpCredentials(StrictModel):
    """The checks and serialisation of the credential keys each HTTP provider's config declares
    (``bearer_token_env``, ``username``, ``password_env``; declared by each, so that ``type`` and the
    URLs stay first in the config and its documentation). Sent by ``providers.http.auth_headers``."""

    @field_validator("bearer_token_env", "password_env", check_fields=False)
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(_NOT_A_VARIABLE.format(what="the value"))
        return value

    @field_validator("headers_env", check_fields=False)
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, env in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header's name (letters, digits and -)")
            if name.lower() in _OWN_HEADERS:
                raise ValueError(f"{name} is not a header to set: shiprail sends its own")
            if not _ENV_NAME.fullmatch(env):
                raise ValueError(_NOT_A_VARIABLE.format(what=f"{name}: the value"))
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> HttpCredentials:
        username, password_env = getattr(self, "username", None), getattr(self, "password_env", None)
        if (username is None) != (password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        bearer = getattr(self, "bearer_token_env", None)
        if bearer is not None and username is not None:
            raise ValueError("give bearer_token_env or username and password_env, not both")
        headers: dict[str, str] = getattr(self, "headers_env", {})
        if (bearer is not None or username is not None) and any(h.lower() == "authorization" for h in headers):
            raise ValueError("give Authorization in headers_env or bearer_token_env / username, not both")
        if len({h.lower() for h in headers}) != len(headers):
            raise ValueError("headers_env names a header twice (header names are not case-sensitive)")
        return self

    @model_serializer(mode="wrap")
    def _omit_no_auth(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The provider is part of the resolved release whose hash approvals approve: a service that
        # sets no credentials serialises as it did before these keys existed, so its hash stays.
        data: dict[str, Any] = handler(self)
        for key in _AUTH_KEYS:
            data = without_default(data, key, None)
        return without_default(data, "headers_env", {})


class PrometheusProviderConfig(HttpCredentials):
    """A Prometheus server's HTTP API; metric queries are PromQL templates."""

    type: Literal["prometheus"] = Field(description="`prometheus`.")
    url: str = Field(description="The Prometheus server's base URL.")
    timeout: Duration = Field(10, description="The longest one query may take.")
    bearer_token_env: BearerTokenEnv = None
    username: Username = None
    password_env: PasswordEnv = None
    headers_env: HeadersEnv = Field(default_factory=dict)


class ScrapeProviderConfig(HttpCredentials):
    """Each version's own Prometheus text endpoint, read directly."""

    type: Literal["scrape"] = Field(description="`scrape`.")
    stable_url: str = Field(description="The stable version's metrics endpoint.")
    canary_url: str = Field(description="The canary version's metrics endpoint.")
    timeout: Duration = Field(5, description="The longest one read may take.")
    bearer_token_env: BearerTokenEnv = None
    username: Username = None
    password_env: PasswordEnv = None
    headers_env: HeadersEnv = Field(default_factory=dict)


class PushProviderConfig(StrictModel):
    """Apps or CI post counts to shiprail."""

    type: Literal["push"] = Field(description="`push`.")


class WebProviderConfig(HttpCredentials):
    """Any JSON endpoint; ``{{version}}`` in the URL, the value at a dotted path."""

    type: Literal["web"] = Field(description="`web`.")
    url: str = Field(description="The JSON endpoint; `{{version}}` is filled in.")
    timeout: Duration = Field(10, description="The longest one request may take.")
    bearer_token_env: BearerTokenEnv = None
    username: Username = None
    password_env: PasswordEnv = None
    headers_env: HeadersEnv = Field(default_factory=dict)


ProviderConfig = Annotated[
    PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
    Field(discriminator="type"),
]


if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from shiprail.clock import Clock
    from shiprail.providers.base import Provider
    from shiprail.schema.service import Metric
    from shiprail.store.db import Store


def metric_problem(
    config: PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
    name: str,
    metric: Metric,
) -> str | None:
    """Why the provider ``config`` names cannot compute ``metric``, or None when it can.

    Checked when a service file is loaded, so a missing query or counter is a located error in
    ``plan validate`` rather than an inconclusive analysis in the middle of a rollout.
    """
    if isinstance(config, PrometheusProviderConfig):
        return None if metric.query else "the prometheus provider needs a PromQL `query`"
    if isinstance(config, WebProviderConfig):
        return None if metric.path else "the web provider needs the dotted `path` to the value"
    if isinstance(config, ScrapeProviderConfig):
        from shiprail.providers.scrape import check_metric

        return check_metric(metric)
    from shiprail.providers.push import check_metric as check_pushed

    return check_pushed(name, metric)


# The template variables each provider fills in, and the fields that are templates.
_PROMQL_VARIABLES = {"version": "2.4.0", "window": "300s"}
_URL_VARIABLES = {"version": "2.4.0", "window": "300s", "window_seconds": "300"}
_LABEL_VARIABLES = {"version": "2.4.0"}


def template_problems(
    config: PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
    metric: Metric,
) -> list[tuple[tuple[str, ...], str]]:
    """(path under the metric, why) for each template of ``metric`` naming a ``{{variable}}`` its provider
    does not fill in (the prometheus provider's queries, the scrape provider's label matchers), and each
    web ``path`` that can name no value (JSONPath, an empty segment).

    Checked when a service file is loaded: a typo such as ``{{windw}}`` would otherwise fail every
    analysis of the release (inconclusive, paused) from its first step on, and a JSONPath make every
    one no data.
    """
    from shiprail.providers.common import dotted_path_problem, render

    out: list[tuple[tuple[str, ...], str]] = []
    if isinstance(config, PrometheusProviderConfig):
        for field in ("query", "count_query", "buckets_query"):
            template = getattr(metric, field)
            if template:
                try:
                    render(template, _PROMQL_VARIABLES)
                except ValueError as exc:
                    out.append(((field,), str(exc)))
    elif isinstance(config, ScrapeProviderConfig):
        for field in ("labels", "error_labels"):
            for label, template in getattr(metric, field).items():
                try:
                    render(template, _LABEL_VARIABLES)
                except ValueError as exc:
                    out.append(((field, label), str(exc)))
    elif isinstance(config, WebProviderConfig):
        for field in ("path", "count_path"):
            path = getattr(metric, field)
            if path and (why := dotted_path_problem(path)):
                out.append(((field,), why))
    return out


def url_problems(
    config: PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
) -> list[tuple[str, str]]:
    """(key, why) for each of the provider's URLs that no query could ever reach: one that is not an
    http:// or https:// URL naming a host (``127.0.0.1:9090``) or a port no URL can hold (``:99090``), a web
    ``url`` template naming an unknown ``{{variable}}``.

    Checked when a service file is loaded: such a URL would fail every query of every analysis, each
    inconclusive, and pause the release at its first step.
    """
    from urllib.parse import urlsplit

    from shiprail.providers.common import render
    from shiprail.providers.http import shown_url
    from shiprail.text import is_http_url

    urls = {
        key: getattr(config, key)
        for key in ("url", "stable_url", "canary_url")
        if isinstance(getattr(config, key, None), str)
    }
    out: list[tuple[str, str]] = []
    for key, url in urls.items():
        filled = url
        if isinstance(config, WebProviderConfig):
            try:
                filled = render(url, _URL_VARIABLES)
            except ValueError as exc:
                out.append((key, str(exc)))
                continue
        if not is_http_url(filled):
            # Quoted without what precedes an @: a user and password (written without a scheme) would
            # otherwise be printed into the terminal and CI log of whoever runs plan validate.
            shown = url if "@" not in url else "…@" + url.rsplit("@", 1)[1]
            out.append((key, f"an http:// or https:// URL is required, got {shown!r}"))
        elif (parts := urlsplit(filled)).password is not None:
            out.append(
                (
                    key,
                    "holds a password, which would be stored with every release, hashed into its approvals and "
                    f"exported in its package; give username: {parts.username} and password_env: the environment "
                    "variable holding it where shiprail runs",
                )
            )
        elif not _port_holds(parts):
            out.append((key, f"{shown_url(url)!r} names a port no URL can hold: give a number from 1 to 65535"))
    return out


def _port_holds(parts: SplitResult) -> bool:
    """Whether ``parts`` names no port, or one a connection can be made to (1 to 65535)."""
    try:
        return parts.port != 0
    except ValueError:  # no number, or out of range
        return False


def build_provider(
    config: PrometheusProviderConfig | ScrapeProviderConfig | PushProviderConfig | WebProviderConfig,
    *,
    clock: Clock,
    stable: str | None = None,
    canary: str | None = None,
    store: Store | None = None,
    service: str | None = None,
) -> Provider:
    """The provider a service file's ``provider:`` names.

    ``stable`` and ``canary`` are the release's two versions; the scrape provider needs them to
    know which endpoint belongs to which version. ``store`` and ``service`` are where the push
    provider reads the counts pushed for the service. The modules are imported here, not at the top,
    because they import the service schema, which imports this package.
    """
    if isinstance(config, PrometheusProviderConfig):
        from shiprail.providers.prometheus import PrometheusProvider

        return PrometheusProvider.from_config(config, clock)
    if isinstance(config, ScrapeProviderConfig):
        from shiprail.providers.scrape import ScrapeProvider

        if stable is None or canary is None:
            raise ValueError("the scrape provider needs the release's stable and canary versions")
        return ScrapeProvider.from_config(config, clock, stable=stable, canary=canary)
    if isinstance(config, WebProviderConfig):
        from shiprail.providers.web import WebProvider

        return WebProvider.from_config(config, clock)
    if isinstance(config, PushProviderConfig):
        from shiprail.providers.push import PushProvider

        if store is None or service is None:
            raise ValueError("the push provider needs the store and the service whose pushed counts it reads")
        return PushProvider(store, clock, service)
    raise ValueError(f"the {config.type} provider is not available yet")
