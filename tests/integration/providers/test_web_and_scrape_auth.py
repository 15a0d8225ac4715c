"""The web and scrape providers against a real local server that asks for credentials.

They take the prometheus provider's credential keys, with its behaviour (one implementation,
``providers.http.auth_headers``): the secret from the environment where shiprail queries, trimmed,
a missing one or one no header can carry a failed sample naming the variable, never its value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import ScrapeProviderConfig, WebProviderConfig, url_problems
from shiprail.providers.scrape import ScrapeProvider
from shiprail.providers.web import WebProvider
from shiprail.schema.service import Metric
from tests.support.exposition import local_server

TOKEN = "tok-4f1e"
API_KEY, APP_KEY = "api-77a0", "app-31c9"  # as Datadog's API asks for both, in headers of their own
PASSWORD = "s3cret"
ACCEPTED = {f"Bearer {TOKEN}", "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
GAUGE = Metric(kind="gauge", path="data.inflight")
SCRAPED = Metric(kind="gauge", gauge="inflight")


class Guarded(BaseHTTPRequestHandler):
    """``/json``: a JSON document; ``/metrics``: a Prometheus text exposition; both only with credentials."""

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        keyed = self.headers.get("X-Api-Key") == API_KEY and self.headers.get("X-App-Key") == APP_KEY
        if self.headers.get("Authorization") not in ACCEPTED and not keyed:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"no valid credentials")
            return
        if self.path.startswith("/json"):
            body = json.dumps({"data": {"inflight": 7}}).encode()
        else:
            body = b"# TYPE inflight gauge\ninflight 7\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with local_server(Guarded) as url:
        yield url


def web(base: str, env: dict[str, str], **auth: str) -> Sample:
    config = WebProviderConfig(type="web", url=f"{base}/json/{{{{version}}}}", timeout=5, **auth)
    return WebProvider(config, env=env).query("inflight", GAUGE, "2.4.0", 60)


def scrape(base: str, env: dict[str, str], **auth: str) -> Sample:
    config = ScrapeProviderConfig(
        type="scrape", stable_url=f"{base}/metrics/a", canary_url=f"{base}/metrics/b", timeout=5, **auth
    )
    provider = ScrapeProvider(config, SimulatedClock(), stable="2.3.1", canary="2.4.0", env=env)
    return provider.query("inflight", SCRAPED, "2.4.0", 60)


BASIC = {"username": "admin", "password_env": "STATS_PASSWORD"}
BEARER = {"bearer_token_env": "STATS_TOKEN"}


@pytest.mark.parametrize("ask", [web, scrape])
def test_a_bearer_token_or_a_basic_auth_password_from_the_environment_is_sent(ask: Any, base: str) -> None:
    assert ask(base, {"STATS_TOKEN": f"{TOKEN}\n"}, **BEARER) == Sample(7.0)  # trimmed, as Prometheus'
    assert ask(base, {"STATS_PASSWORD": PASSWORD}, **BASIC) == Sample(7.0)


def test_refused_credentials_fail_as_any_http_error(base: str) -> None:
    assert web(base, {"STATS_TOKEN": "stale"}, **BEARER) == Sample.failed(
        f"the JSON endpoint {base}/json/2.4.0 answered HTTP 401: no valid credentials"
    )
    assert scrape(base, {}) == Sample.failed(f"the canary metrics endpoint {base}/metrics/b answered HTTP 401")


@pytest.mark.parametrize(("ask", "whose"), [(web, "the web provider's"), (scrape, "the scrape provider's")])
def test_a_missing_or_unsendable_secret_fails_naming_the_variable_not_the_secret(
    ask: Any, whose: str, base: str
) -> None:
    assert ask(base, {}, **BASIC) == Sample.failed(
        f"{whose} credentials are missing: set STATS_PASSWORD where shiprail runs (provider.password_env)"
    )
    assert ask(base, {"STATS_TOKEN": f"{TOKEN}\nX-Injected: 1"}, **BEARER) == Sample.failed(
        f"{whose} credentials cannot be sent: STATS_TOKEN holds a character an HTTP header cannot carry (a line "
        "break, a control character or one beyond ASCII; provider.bearer_token_env)"
    )


def test_a_password_in_a_web_or_scrape_url_is_refused_as_in_a_prometheus_one() -> None:
    why = (
        "holds a password, which would be stored with every release, hashed into its approvals and exported in "
        "its package; give username: admin and password_env: the environment variable holding it where shiprail runs"
    )
    web_config = WebProviderConfig(type="web", url="https://admin:s3cret@stats.internal/{{version}}")
    assert url_problems(web_config) == [("url", why)]
    scrape_config = ScrapeProviderConfig(
        type="scrape", stable_url="http://127.0.0.1:8001/metrics", canary_url="http://admin:s3cret@127.0.0.1:8002/m"
    )
    assert url_problems(scrape_config) == [("canary_url", why)]


@pytest.mark.parametrize(
    ("auth", "why"),
    [
        ({"username": "admin"}, "basic auth needs both username and password_env"),
        ({"bearer_token_env": "T", **BASIC}, "give bearer_token_env or username and password_env, not both"),
        ({"bearer_token_env": "STATS-TOKEN"}, "the value is not an environment variable's name"),
    ],
)
def test_web_and_scrape_credentials_are_checked_as_prometheus_ones(auth: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        WebProviderConfig(type="web", url="http://stats/x", **auth)
    with pytest.raises(ValueError, match=why):
        ScrapeProviderConfig(type="scrape", stable_url="http://a/m", canary_url="http://b/m", **auth)
    # Without credentials each serialises as before the keys existed: the release's hash stays.
    assert WebProviderConfig(type="web", url="http://stats/x").model_dump() == {
        "type": "web",
        "url": "http://stats/x",
        "timeout": "10s",
    }


KEYED = {"headers_env": {"X-Api-Key": "STATS_API_KEY", "X-App-Key": "STATS_APP_KEY"}}


@pytest.mark.parametrize(("ask", "whose"), [(web, "the web provider's"), (scrape, "the scrape provider's")])
def test_headers_take_their_values_from_the_environment(ask: Any, whose: str, base: str) -> None:
    """Argo's web provider sends any headers (an API key); here each names the variable holding its
    value, so the key is never written in the service file."""
    env = {"STATS_API_KEY": API_KEY, "STATS_APP_KEY": f"{APP_KEY}\n"}
    assert ask(base, env, **KEYED) == Sample(7.0)
    assert ask(base, {"STATS_API_KEY": API_KEY}, **KEYED) == Sample.failed(
        f"{whose} credentials are missing: set STATS_APP_KEY where shiprail runs (provider.headers_env.X-App-Key)"
    )
    assert ask(base, {**env, "STATS_API_KEY": "api\u00e9"}, **KEYED) == Sample.failed(
        f"{whose} credentials cannot be sent: STATS_API_KEY holds a character an HTTP header cannot carry (a line "
        "break, a control character or one beyond ASCII; provider.headers_env.X-Api-Key)"
    )


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-Api-Key": "api-77a0-secret"}, "X-Api-Key: the value is not an environment variable's name"),
        ({"X Api Key": "K"}, "'X Api Key' is not an HTTP header's name"),
        ({"Host": "K"}, "Host is not a header to set: shiprail sends its own"),
        ({"x-api-key": "K", "X-Api-Key": "L"}, "headers_env names a header twice"),
        ({"Authorization": "K", "X-Api-Key": "L"}, None),
    ],
)
def test_headers_env_names_headers_and_variables(headers: dict[str, str], why: str | None) -> None:
    if why is None:
        assert WebProviderConfig(type="web", url="http://stats/x", headers_env=headers).headers_env == headers
        with pytest.raises(ValueError, match="give Authorization in headers_env or bearer_token_env"):
            WebProviderConfig(type="web", url="http://stats/x", headers_env=headers, bearer_token_env="T")
        return
    with pytest.raises(ValueError, match=why):
        WebProviderConfig(type="web", url="http://stats/x", headers_env=headers)


def test_a_url_without_a_scheme_is_quoted_without_the_password_it_holds() -> None:
    config = WebProviderConfig(type="web", url="admin:s3cret@stats.internal/{{version}}")
    assert url_problems(config) == [
        ("url", "an http:// or https:// URL is required, got '…@stats.internal/{{version}}'")
    ]
