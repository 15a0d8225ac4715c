"""The prometheus provider against a real Prometheus that asks for credentials.

Prometheus checks HTTP basic auth itself (``--web.config.file``); a bearer token is checked by a
real nginx in front of it, as an authenticating proxy does. The secrets come from the environment
where shiprail queries, never from the service file (stored with every release, hashed into its
approvals, exported in its package).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.schema.service import Metric
from tests.support.processes import free_port, require_binary, stop, wait_for_port

from .conftest import PrometheusServer, start_prometheus

PASSWORD = "s3cret"
# bcrypt of PASSWORD at the lowest cost (4), so Prometheus checks it in a moment.
PASSWORD_HASH = "$2b$04$FF6C6q91IURxO66EUlwQgOxHav5R4/5rPaTnGCg73zANcjfxGCe1q"
BASIC = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
TOKEN = "tok-4f1e"
THREE = Metric(kind="gauge", query="vector(3)")


@pytest.fixture(scope="module")
def prometheus(module_tmp: Path, request: pytest.FixtureRequest) -> PrometheusServer:
    web = f"basic_auth_users:\n  admin: '{PASSWORD_HASH}'\n"
    return start_prometheus(module_tmp, [], request, web_config=web, ready_headers={"Authorization": BASIC})


def ask(url: str, env: dict[str, str], **auth: str) -> Sample:
    config = PrometheusProviderConfig(type="prometheus", url=url, timeout=5, **auth)
    return PrometheusProvider(config, env=env).query("three", THREE, "2.4.0", 60)


def test_basic_auth_sends_the_password_from_the_environment(prometheus: PrometheusServer) -> None:
    auth = {"username": "admin", "password_env": "PROM_PASSWORD"}
    assert ask(prometheus.url, {"PROM_PASSWORD": PASSWORD}, **auth) == Sample(3.0)
    refused = Sample.failed("metric 'three': HTTP 401: Unauthorized")
    assert ask(prometheus.url, {"PROM_PASSWORD": "wrong"}, **auth) == refused
    assert ask(prometheus.url, {}) == refused


def test_a_password_not_set_where_shiprail_runs_is_a_failed_sample_naming_the_variable(
    prometheus: PrometheusServer,
) -> None:
    assert ask(prometheus.url, {}, username="admin", password_env="PROM_PASSWORD") == Sample.failed(
        "metric 'three': the Prometheus credentials are missing: set PROM_PASSWORD where shiprail runs "
        "(provider.password_env)"
    )


NGINX_BEARER = """\
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            if ($http_authorization != "Bearer {token}") {{ return 401 "no valid bearer token"; }}
            proxy_set_header Authorization "{basic}";
            proxy_pass {upstream};
        }}
    }}
}}
"""


def test_a_bearer_token_from_the_environment_passes_an_authenticating_proxy(
    prometheus: PrometheusServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    binary = require_binary("nginx", "/usr/sbin/nginx")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_BEARER.format(d=tmp_path, port=port, token=TOKEN, basic=BASIC, upstream=prometheus.url))
    proc = subprocess.Popen(
        [binary, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    request.addfinalizer(lambda: stop(proc))
    wait_for_port(port, proc, tmp_path / "error.log")
    url = f"http://127.0.0.1:{port}"
    assert ask(url, {"PROM_TOKEN": TOKEN}, bearer_token_env="PROM_TOKEN") == Sample(3.0)
    assert ask(url, {"PROM_TOKEN": "stale"}, bearer_token_env="PROM_TOKEN") == Sample.failed(
        "metric 'three': HTTP 401: no valid bearer token"
    )


def test_a_secret_read_with_its_file_s_trailing_newline_is_sent_without_it(prometheus: PrometheusServer) -> None:
    """A secret put in the environment from a file (a Kubernetes secret made with --from-file, ``$(<
    file)`` kept whole) ends in a newline no HTTP header can carry: it is trimmed, as Prometheus
    itself trims its credentials files. It used to be refused by httpx, whose refusal quoted the whole
    header into the failed sample: the token into the analysis evidence and the audit trail."""
    auth = {"username": "admin", "password_env": "PROM_PASSWORD"}
    assert ask(prometheus.url, {"PROM_PASSWORD": f"{PASSWORD}\n"}, **auth) == Sample(3.0)
    # Prometheus asks for basic auth, so this token is refused: by Prometheus, not quoted by shiprail.
    refused = ask(prometheus.url, {"PROM_TOKEN": f"{TOKEN}\n"}, bearer_token_env="PROM_TOKEN")
    assert refused == Sample.failed("metric 'three': HTTP 401: Unauthorized")


@pytest.mark.parametrize("secret", [f"{TOKEN}\nX-Injected: 1", f"{TOKEN}\u00e9"])
def test_a_token_no_http_header_can_carry_fails_the_query_naming_the_variable_not_the_token(
    prometheus: PrometheusServer, secret: str
) -> None:
    """A newline inside the token, or a character beyond ASCII: the query fails saying which variable
    to fix, without the token (it used to be quoted whole, or to raise UnicodeEncodeError)."""
    assert ask(prometheus.url, {"PROM_TOKEN": secret}, bearer_token_env="PROM_TOKEN") == Sample.failed(
        "metric 'three': the Prometheus credentials cannot be sent: PROM_TOKEN holds a character an HTTP "
        "header cannot carry (a line break, a control character or one beyond ASCII; provider.bearer_token_env)"
    )
