"""``shiprail serve``'s status pages and release API, on a real uvicorn server and a real store.

Releases of the example plan are driven by the controller with a fake router and provider on a
simulated clock (as in tests/integration/test_retro_export.py): one rolled back at 50 %, one
mid-rollout, one still planned. The pages are read as a browser reads them (Basic authentication,
HTML) and the API as a dashboard does (a bearer token, JSON).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shiprail.defaults import STATUS_ENDED_SHOWN
from shiprail.domain.states import Action
from shiprail.project import check_plan_file
from shiprail.releases import Releases, ReleaseView
from shiprail.serve import create_app
from shiprail.serve.status import OFF
from shiprail.store.models import Release
from tests.integration.controller.test_controller import FakeRouter, controller
from tests.integration.test_retro_export import PLAN, rolled_back, staged_and_started
from tests.integration.test_retro_export import probe_target as probe_target  # a fixture
from tests.integration.test_retro_export import svc as svc  # a fixture
from tests.support.overrides import override
from tests.support.serving import serving

TOKEN = "status-token-1"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = httpx.BasicAuth("anyone", TOKEN)


@pytest.fixture
def url(svc: Releases) -> Iterator[str]:
    with serving(create_app(svc.store, svc.clock, {}, releases=svc, status_token=TOKEN)) as base:
        yield base


def mid_rollout(svc: Releases) -> str:
    """A release at step 2 (10 %), analysed there once."""
    rid = staged_and_started(svc)
    ctl = controller(svc, FakeRouter())
    while svc.get(rid).step != 1:
        ctl.tick()
        svc.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    ctl.tick()
    return rid


def test_the_pages_and_the_api_are_off_without_a_token(svc: Releases) -> None:
    with serving(create_app(svc.store, svc.clock, {}, releases=svc)) as base:
        page = httpx.get(f"{base}/releases", auth=BASIC)
        api = httpx.get(f"{base}/api/v1/releases", headers=BEARER)
    assert page.status_code == 404
    assert html.escape(OFF) in page.text and page.headers["content-type"].startswith("text/html")
    assert (api.status_code, api.json()) == (404, {"detail": OFF})
    assert OFF.startswith("the status pages are off: set SHIPRAIL_STATUS_TOKEN where `shiprail serve` runs")


def test_readers_need_the_token(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        page = http.get("/releases")
        api = http.get("/api/v1/releases")
        wrong_page = http.get("/releases", auth=httpx.BasicAuth("anyone", "nope"))
        wrong_api = http.get("/api/v1/releases", headers={"Authorization": "Bearer nope"})
        no_password = http.get("/releases", auth=httpx.BasicAuth(TOKEN, ""))
        good = [
            http.get("/releases", auth=BASIC).status_code,
            http.get("/releases", headers=BEARER).status_code,
            http.get("/api/v1/releases", headers=BEARER).status_code,
            http.get("/api/v1/releases", auth=BASIC).status_code,
        ]
    # A browser asks for the token itself (Basic), and again after a wrong one; an API client is told.
    basic = 'Basic realm="shiprail status", charset="UTF-8"'
    assert (page.status_code, page.headers["www-authenticate"]) == (401, basic)
    assert (api.status_code, api.headers["www-authenticate"]) == (401, "Bearer")
    assert api.json() == {"detail": "send the status token ($SHIPRAIL_STATUS_TOKEN) as `Authorization: Bearer <token>`"}
    assert wrong_page.status_code == 401 and "that is not the status token" in wrong_page.text
    assert (wrong_api.status_code, wrong_api.json()) == (
        403,
        {"detail": "the token sent is not the status token ($SHIPRAIL_STATUS_TOKEN)"},
    )
    assert no_password.status_code == 401  # the token as a user name is not the password
    assert good == [200, 200, 200, 200]


def test_the_list_shows_where_each_release_under_way_stands_and_those_that_ended(svc: Releases, url: str) -> None:
    done = rolled_back(svc)
    svc.close_postmortem(done, "dana", "The load test runs on its own host now")
    live = mid_rollout(svc)
    planned = svc.create(check_plan_file(PLAN), "alice").id
    page = httpx.get(f"{url}/releases", auth=BASIC)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    text = page.text
    under_way, ended = text.split("<h2>Ended</h2>")
    assert f'<a href="/releases/{live}">{live}</a>' in under_way
    assert f'<a href="/releases/{planned}">{planned}</a>' in under_way
    assert f'<a href="/releases/{done}">{done}</a>' in ended and f'/releases/{done}"' not in under_way
    assert "step 2 of 4: 10% (router: 10%), baked 10m of 2h, 1h50m left" in under_way
    assert '<span class="state s-rolled_back">rolled_back</span>' in ended
    assert '<meta http-equiv="refresh" content="10">' in text


def test_a_release_page_is_its_live_state_over_its_package(svc: Releases, url: str) -> None:
    rid = mid_rollout(svc)
    page = httpx.get(f"{url}/releases/{rid}", auth=BASIC)
    assert page.status_code == 200
    text = page.text
    assert "checkout 2.3.1 → 2.4.0" in text
    assert "step 2 of 4: 10% (router: 10%), baked 10m of 2h, 1h50m left" in text
    assert 'class="headline"' not in text  # no outcome yet
    # The last analysis as release show prints it, each verdict styled.
    assert '<td>errors</td><td class="v-pass">pass</td><td>0.001</td><td>0.01</td>' in text
    # The package's sections, the gates open with the override of the load test in them.
    for section in ("rollout", "gates", "plan", "audit"):
        assert f'<details class="section" id="{section}"' in text
    assert "<td>start</td>\n<td>load_test</td>\n<td>dana</td>" in text
    assert "<th>seq</th>" in text  # the audit events with their hashes
    assert '<meta http-equiv="refresh"' in text  # under way: it reloads


def test_an_ended_release_page_has_its_rollback_log_and_retrospective_and_does_not_reload(
    svc: Releases, url: str
) -> None:
    rid = rolled_back(svc)
    text = httpx.get(f"{url}/releases/{rid}", auth=BASIC).text
    assert "<strong>Rolled back at step 3 (50%).</strong> Trigger <code>errors</code> fired: 0.08 above" in text
    assert "Generated by shiprail when the release ended" not in text  # the retrospective's guide, for its editors
    assert '<details class="section" id="retrospective" open><summary>Retrospective</summary>' in text
    assert '<details class="section" id="rollback" open><summary>Rollback log</summary>' in text
    assert "trigger errors fired: 0.08 above the limit 0.01" in text
    assert '<meta http-equiv="refresh"' not in text


def test_what_people_wrote_cannot_put_markup_on_the_page(svc: Releases, url: str) -> None:
    text = PLAN.read_text()
    assert "summary:" in text
    PLAN.write_text(text.replace("summary:", 'summary: "<script>alert(1)</script> <img src=x onerror=alert(2)>" #', 1))
    rid = svc.create(check_plan_file(PLAN), "alice").id
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    page = httpx.get(f"{url}/releases/{rid}", auth=BASIC).text
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_api_answers_what_release_show_json_prints(svc: Releases, url: str) -> None:
    rid = mid_rollout(svc)
    with httpx.Client(base_url=url, headers=BEARER) as http:
        one = http.get(f"/api/v1/releases/{rid}")
        rows = http.get("/api/v1/releases")
        rolling = http.get("/api/v1/releases", params={"status": "rolling_out"})
        planned = http.get("/api/v1/releases", params={"status": "planned"})
        bad = http.get("/api/v1/releases", params={"status": "shipped"})
        missing = http.get("/api/v1/releases/nope-1.0")
    assert one.json() == json.loads(json.dumps(svc.get(rid).to_json()))
    assert rows.json() == [json.loads(json.dumps(v.to_json(full=False))) for v in svc.list()]
    assert [r["id"] for r in rolling.json()] == [rid] and planned.json() == []
    assert bad.status_code == 422 and bad.json()["detail"].startswith("query.status: Input should be 'planned'")
    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "no release 'nope-1.0'; recent releases: checkout-2.4.0"},
    )


def test_the_list_api_takes_a_limit_and_a_service(svc: Releases, url: str) -> None:
    # A dashboard polling every few seconds read every release ever made at each look.
    ids = []
    for _ in range(3):
        ids.append(svc.create(check_plan_file(PLAN), "alice").id)
        svc.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    with httpx.Client(base_url=url, headers=BEARER) as http:
        newest = http.get("/api/v1/releases", params={"limit": 2})
        checkout = http.get("/api/v1/releases", params={"service": "checkout", "limit": 5})
        other = http.get("/api/v1/releases", params={"service": "billing"})
        zero = http.get("/api/v1/releases", params={"limit": 0})
    assert [r["id"] for r in newest.json()] == [ids[2], ids[1]]
    assert [r["id"] for r in checkout.json()] == ids[::-1] and other.json() == []
    assert zero.status_code == 422 and zero.json()["detail"].startswith("query.limit: Input should be greater than")


def test_a_page_for_a_release_that_is_not_there(url: str) -> None:
    page = httpx.get(f"{url}/releases/nope-1.0", auth=BASIC)
    assert page.status_code == 404
    assert "no release &#39;nope-1.0&#39;; `shiprail release list` shows them" in page.text


def test_the_root_leads_to_the_list(url: str) -> None:
    got = httpx.get(f"{url}/", auth=BASIC, follow_redirects=True)
    assert got.status_code == 200 and str(got.url).endswith("/releases")


def test_head_requests_answer_as_get_does_without_a_body(svc: Releases, url: str) -> None:
    # Uptime monitors, load balancers' health checks and `curl -I` ask with HEAD.
    rid = mid_rollout(svc)
    with httpx.Client(base_url=url) as http:
        got = [
            (r.status_code, r.headers["content-type"], r.content)
            for r in (
                http.head("/releases", auth=BASIC),
                http.head(f"/releases/{rid}", auth=BASIC),
                http.head("/api/v1/releases", headers=BEARER),
                http.head(f"/api/v1/releases/{rid}", headers=BEARER),
            )
        ]
        refused = http.head("/releases")
        root = http.head("/", auth=BASIC)
    assert got == [
        (200, "text/html; charset=utf-8", b""),
        (200, "text/html; charset=utf-8", b""),
        (200, "application/json", b""),
        (200, "application/json", b""),
    ]
    assert (refused.status_code, refused.content) == (401, b"")
    assert (root.status_code, root.headers["location"]) == (307, "/releases")


def test_a_page_read_while_the_store_is_away_says_so_and_reloads(
    svc: Releases, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = mid_rollout(svc)

    def away(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(svc, "list", away)
    monkeypatch.setattr(svc.store, "snapshot", away)
    with httpx.Client(base_url=url) as http:
        pages = [http.get("/releases", auth=BASIC), http.get(f"/releases/{rid}", auth=BASIC)]
        api = http.get("/api/v1/releases", headers=BEARER)
    # A wall screen's reload that meets a database restart shows a page that reloads by itself,
    # not JSON it would show until someone reloads it by hand.
    for page in pages:
        assert (page.status_code, page.headers["content-type"]) == (503, "text/html; charset=utf-8")
        assert (page.headers["retry-after"], page.headers["cache-control"]) == ("1", "no-store")
        assert "shiprail serve cannot reach its store right now; this page reloads by itself" in page.text
        assert '<meta http-equiv="refresh" content="10">' in page.text
    assert (api.status_code, api.headers["content-type"]) == (503, "application/json")
    assert api.json() == {"detail": "shiprail serve cannot reach its store right now; try again"}


def test_behind_a_proxy_under_a_path_the_pages_link_under_it(svc: Releases) -> None:
    # nginx: location /shiprail/ { proxy_pass http://serve:8088/; } and `shiprail serve --root-path /shiprail`.
    rid = mid_rollout(svc)
    app = create_app(svc.store, svc.clock, {}, releases=svc, status_token=TOKEN)
    with serving(app, root_path="/shiprail") as base, httpx.Client(base_url=base, auth=BASIC) as http:
        listed = http.get("/releases")
        one = http.get(f"/releases/{rid}")
        root = http.get("/")
        api = http.get(f"/api/v1/releases/{rid}", headers=BEARER)
    assert listed.status_code == 200 and f'<a href="/shiprail/releases/{rid}">{rid}</a>' in listed.text
    assert '<a class="home" href="/shiprail/releases">shiprail</a>' in one.text
    assert (root.status_code, root.headers["location"]) == (307, "/shiprail/releases")
    assert api.json()["id"] == rid


def test_what_people_wrote_cannot_make_readers_browsers_fetch_from_elsewhere(svc: Releases, url: str) -> None:
    # An image in an override reason would be fetched by every reader's browser from a host its
    # author chose (who reads which release, and when, from where): shown as a link instead.
    rid = svc.create(check_plan_file(PLAN), "alice").id
    override(svc, rid, "dana", "see ![graph](http://elsewhere.example/p.png) for why")
    page = httpx.get(f"{url}/releases/{rid}", auth=BASIC)
    assert "<img" not in page.text
    assert 'see !<a href="http://elsewhere.example/p.png">graph</a> for why' in page.text
    # And whatever a renderer lets through one day, the browser is told to load nothing from elsewhere.
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def test_the_list_reads_only_the_releases_it_shows(svc: Releases, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Years of releases (10,000 ended) took the list seconds to read, at every reload of every
    # screen showing it: it built a view of each release to show the latest 50 that ended.
    live = svc.create(check_plan_file(PLAN), "alice").id
    with svc.store.transaction() as s:
        row = s.get(Release, live)
        assert row is not None
        columns = {c.name: getattr(row, c.key) for c in Release.__table__.columns}
        for i in range(STATUS_ENDED_SHOWN + 10):
            at = row.created_at - timedelta(days=i + 1)
            s.execute(
                Release.__table__.insert().values(
                    {**columns, "id": f"old-{i:03}", "status": "complete", "created_at": at, "state_since": at}
                )
            )
    built: list[str] = []
    view = Releases._view

    def counted(self: Releases, s: Session, release: Release, full: bool = True) -> ReleaseView:
        built.append(release.id)
        return view(self, s, release, full)

    monkeypatch.setattr(Releases, "_view", counted)
    text = httpx.get(f"{url}/releases", auth=BASIC).text
    assert sorted(built) == sorted([live] + [f"old-{i:03}" for i in range(STATUS_ENDED_SHOWN)])
    assert f"The {STATUS_ENDED_SHOWN} latest of {STATUS_ENDED_SHOWN + 10};" in text
    assert f'<a href="/releases/{live}">{live}</a>' in text.split("<h2>Ended</h2>")[0]
    assert '<a href="/releases/old-049">' in text and '<a href="/releases/old-050">' not in text


def test_a_paused_release_says_who_paused_it_why_and_what_resumes_it(svc: Releases, url: str) -> None:
    """As `release show` says it: the list and the release's page, not only the state "paused"."""
    rid = mid_rollout(svc)
    at = svc.clock.now()
    svc.act(rid, Action.PAUSE, "bob", reason="dashboards look odd")
    line = html.escape(
        f"paused by bob at {at.strftime('%Y-%m-%d %H:%M:%S')}Z: dashboards look odd; only a person resumes it: "
        f"`shiprail release resume {rid}`"
    )
    assert f'<p class="trouble">{line}</p>' in httpx.get(f"{url}/releases/{rid}", auth=BASIC).text
    assert f'<span class="trouble">{line}</span>' in httpx.get(f"{url}/releases", auth=BASIC).text
