"""The nginx router against a real nginx: shares of traffic, sticky cohorts, rejected configs,
failed reloads and idempotence."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shiprail.routers import NginxRouter, NginxRouterConfig, RouterError
from shiprail.routers.nginx import LOCK_NAME, HeaderRoute, render

from .conftest import Backends, Nginx, answers, measure

REQUESTS = 1000
WEIGHTS = [0, 1, 10, 50, 100, 0]  # the default rollout, then a rollback


def make_config(nginx_binary: str, d: Path, backends: Backends, **overrides: str) -> NginxRouterConfig:
    fields: dict[str, str] = {
        "type": "nginx",
        "include_file": str(d / "conf.d" / "checkout.conf"),
        "upstream": "checkout",
        "stable": backends.stable,
        "canary": backends.canary,
        "nginx_binary": nginx_binary,
        "prefix": str(d),
        "conf": str(d / "nginx.conf"),
        "error_log": str(d / "error.log"),
    }
    fields.update(overrides)
    return NginxRouterConfig.model_validate(fields)


def started(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path, **overrides: str
) -> tuple[Nginx, NginxRouter]:
    """nginx running on a file the router rendered for weight 0, and that router."""
    d = tmp_path / "nginx0"
    config = make_config("nginx", d, backends, **overrides)
    target = "checkout" if config.mode == "weighted" else "$shiprail_checkout"
    instance = nginx_factory(target, render(config, 0))
    router = NginxRouter(config.model_copy(update={"nginx_binary": instance.binary}), "checkout")
    return instance, router


def apply(nginx: Nginx, router: NginxRouter, weight: float) -> None:
    """Set the weight and wait until nginx's old workers are gone, so every request sees it."""
    old = nginx.workers()
    router.set_weight(weight)
    nginx.wait_for_new_workers(old)


def test_weights_split_traffic_in_the_set_shares(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    assert router.current_weight() == 0
    assert measure(nginx.url, 200) == {"stable": 200}
    seen = {}
    for weight in WEIGHTS[1:]:
        apply(nginx, router, weight)
        assert router.current_weight() == weight
        counts = measure(nginx.url, REQUESTS)
        seen[weight] = counts["canary"]
        # One worker, smooth weighted round-robin restarted by the reload: the split is exact up to
        # the rounding of the last partial cycle.
        assert abs(counts["canary"] - REQUESTS * weight / 100) <= 2, (weight, counts)
        assert counts["stable"] + counts["canary"] == REQUESTS
    print(f"canary responses out of {REQUESTS}: {seen}")
    assert seen[100] == REQUESTS and seen[0] == 0


def test_the_file_records_the_weight_and_omits_a_server_at_zero(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    apply(nginx, router, 1)
    text = nginx.include_file.read_text()
    assert text.startswith("# shiprail-router: nginx upstream=checkout weight=1 state=applied\n")
    assert f"server {backends.stable} weight=99;" in text and f"server {backends.canary} weight=1;" in text
    apply(nginx, router, 0)
    assert backends.canary not in nginx.include_file.read_text()
    assert not list(nginx.include_file.parent.glob(".*.tmp")), "a temporary file was left behind"


def test_a_rejected_config_keeps_the_previous_file_and_nginx_serving(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    apply(nginx, router, 10)
    before = nginx.include_file.read_bytes()
    workers = nginx.workers()
    broken = NginxRouter(router.config.model_copy(update={"canary": "127.0.0.1:99999"}), "checkout")
    with pytest.raises(RouterError, match=r"nginx rejected .*checkout.conf at weight 50.*invalid port") as caught:
        broken.set_weight(50)
    print(caught.value.message)
    assert nginx.include_file.read_bytes() == before
    assert nginx.workers() == workers, "nginx was reloaded although its configuration was rejected"
    assert router.current_weight() == 10
    counts = measure(nginx.url, 1000)
    assert abs(counts["canary"] - 100) <= 2, counts


def test_an_nginx_binary_that_is_not_there_is_said_so_not_a_rejection(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    # It read "nginx rejected …checkout.conf at weight 50 …: /opt/nginx/sbin/nginx was not found":
    # nothing had tested the file, let alone rejected it.
    nginx, router = started(nginx_factory, backends, tmp_path)
    apply(nginx, router, 10)
    before = nginx.include_file.read_bytes()
    missing = NginxRouter(router.config.model_copy(update={"nginx_binary": str(tmp_path / "no-nginx")}), "checkout")
    with pytest.raises(RouterError) as caught:
        missing.set_weight(50)
    assert caught.value.message == (
        f"nginx could not test {router.path} at weight 50, so the previous file was put back: "
        f"{tmp_path / 'no-nginx'} was not found"
    )
    assert nginx.include_file.read_bytes() == before


def test_a_failed_reload_puts_the_previous_file_back(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    apply(nginx, router, 10)
    before = nginx.include_file.read_bytes()
    nginx.proc.terminate()
    nginx.proc.wait(timeout=10)
    with pytest.raises(RouterError, match="nginx could not be reloaded for weight 50") as caught:
        router.set_weight(50)
    print(caught.value.message)
    assert nginx.include_file.read_bytes() == before
    assert router.current_weight() == 10


def test_setting_the_same_weight_again_does_not_reload(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    apply(nginx, router, 10)
    workers = nginx.workers()
    mtime = nginx.include_file.stat().st_mtime_ns
    for _ in range(3):
        router.set_weight(10)
    assert nginx.workers() == workers
    assert nginx.include_file.stat().st_mtime_ns == mtime
    # nginx logs each reload it performs: one for the 10 %, none for the repeats.
    assert nginx.error_log.read_text().count("signal 1 (SIGHUP) received") == 1


def test_an_unconfirmed_change_is_not_reported_and_is_applied_when_set_again(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    # As if shiprail died between writing the file and reloading nginx.
    nginx.include_file.write_text(render(router.config, 0, state="pending"))
    with pytest.raises(RouterError, match="reload applying it was not confirmed"):
        router.current_weight()
    apply(nginx, router, 0)
    assert router.current_weight() == 0


def test_a_file_not_written_by_shiprail_is_not_trusted(tmp_path: Path, backends: Backends) -> None:
    config = make_config("nginx", tmp_path, backends)
    (tmp_path / "conf.d").mkdir()
    router = NginxRouter(config, "checkout")
    with pytest.raises(RouterError, match="does not exist"):
        router.current_weight()
    Path(config.include_file).write_text("upstream checkout { server 127.0.0.1:1; }\n")
    with pytest.raises(RouterError, match="not written by shiprail"):
        router.current_weight()


def _user(i: int) -> dict[str, str]:
    return {"X-User": f"user-{i // 2}"}  # each user asks twice in a row


def test_split_clients_keeps_each_key_on_one_variant(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path, mode="split_clients", key="$http_x_user")
    users = 2000
    canary_users: dict[float, set[str]] = {}
    for weight in (1, 10, 50):
        apply(nginx, router, weight)
        assert router.current_weight() == weight
        variants: dict[str, set[str]] = {}
        for i, text in enumerate(answers(nginx.url, users * 2, _user)):
            variants.setdefault(_user(i)["X-User"], set()).add(text)
        assert all(len(v) == 1 for v in variants.values()), "a user saw both variants"
        canary_users[weight] = {u for u, v in variants.items() if v == {"canary"}}
        share = len(canary_users[weight])
        expected = users * weight / 100
        # The hash of 2000 distinct keys: binomial spread, 4 standard deviations either way.
        spread = 4 * (users * weight / 100 * (1 - weight / 100)) ** 0.5
        assert abs(share - expected) <= spread, (weight, share)
        # Requests without the key hash to 0, which falls in stable's range (listed first).
        assert measure(nginx.url, 50) == {"stable": 50}
    print({w: len(u) for w, u in canary_users.items()}, f"canary users out of {users}")
    # Cohorts only grow: whoever was in the canary at 1 % is still there at 10 % and 50 %.
    assert canary_users[1] <= canary_users[10] <= canary_users[50]
    apply(nginx, router, 100)
    assert measure(nginx.url, 100, _user) == {"canary": 100}
    apply(nginx, router, 0)
    assert measure(nginx.url, 100, _user) == {"stable": 100}


def fresh(url: str, requests: int) -> Counter[str]:
    """Which version answered each of ``requests`` GETs, each on a new connection (as new clients come)."""
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as client:
        return Counter(client.get(url).raise_for_status().text for _ in range(requests))


def test_a_weight_is_served_as_soon_as_set_weight_returns(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    for weight in (100, 0) * 4:
        before = nginx.workers()
        router.set_weight(weight)  # no waiting here: the router confirmed the reload itself
        assert not nginx.workers() & before, "set_weight returned while an old worker still accepted"
        assert fresh(nginx.url, 20) == {("canary" if weight else "stable"): 20}, weight


def test_a_reload_the_master_does_not_take_is_not_confirmed_and_the_file_is_put_back(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    nginx, router = started(nginx_factory, backends, tmp_path)
    apply(nginx, router, 10)
    before = nginx.include_file.read_bytes()
    hurried = NginxRouter(router.config.model_copy(update={"timeout": 1}), "checkout")
    os.kill(nginx.proc.pid, signal.SIGSTOP)  # a master that cannot act on the reload signal
    try:
        with pytest.raises(RouterError, match=r"did not start workers on the configuration for weight 50 within 1s"):
            hurried.set_weight(50)
    finally:
        os.kill(nginx.proc.pid, signal.SIGCONT)
    assert nginx.include_file.read_bytes() == before
    assert router.current_weight() == 10
    # The master now acts on the pending signal and reloads the file that was put back: still 10 %.
    counts = fresh(nginx.url, 200)
    assert abs(counts["canary"] - 20) <= 2, counts


def test_routers_sharing_one_nginx_take_turns(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    """One service's rejected file never lands in another's reload (the include directory's lock)."""
    nginx, router = started(nginx_factory, backends, tmp_path)
    other_file = nginx.include_file.parent / "other.conf"
    broken = NginxRouter(
        router.config.model_copy(
            update={"include_file": str(other_file), "upstream": "other", "canary": "127.0.0.1:99999"}
        ),
        "other",
    )
    stop = threading.Event()
    rejected: list[str] = []

    def keep_breaking() -> None:
        while not stop.is_set():
            try:
                broken.set_weight(50)
            except RouterError as exc:
                rejected.append(exc.message)

    breaker = threading.Thread(target=keep_breaking)
    breaker.start()
    try:
        for weight in (100, 0) * 5:
            router.set_weight(weight)
            assert fresh(nginx.url, 10) == {("canary" if weight else "stable"): 10}, weight
            assert router.current_weight() == weight
    finally:
        stop.set()
        breaker.join(timeout=30)
    assert rejected and all("invalid port" in m for m in rejected), rejected[:3]
    assert not other_file.exists()
    assert (nginx.include_file.parent / LOCK_NAME).exists()


def test_an_include_file_given_as_a_symlink_changes_the_file_nginx_reads(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    """A symlink kept elsewhere to the file nginx includes: the weight lands in that file."""
    nginx, router = started(nginx_factory, backends, tmp_path)
    link = tmp_path / "shiprail" / "checkout.conf"
    link.parent.mkdir()
    link.symlink_to(nginx.include_file)
    linked = NginxRouter(router.config.model_copy(update={"include_file": str(link)}), "checkout")
    linked.set_weight(100)
    assert link.is_symlink() and link.resolve() == nginx.include_file
    assert nginx.include_file.read_text() == render(router.config, 100)
    assert fresh(nginx.url, 10) == {"canary": 10}
    # The turns are taken in the directory nginx reads, with the services whose files are there.
    assert (nginx.include_file.parent / LOCK_NAME).exists() and not (link.parent / LOCK_NAME).exists()
    assert not list(link.parent.glob(".*.tmp")) and not list(nginx.include_file.parent.glob(".*.tmp"))
    linked.set_weight(0)
    assert linked.current_weight() == 0 and fresh(nginx.url, 10) == {"stable": 10}


@pytest.mark.parametrize("mode", ["weighted", "split_clients"])
def test_a_header_route_reaches_the_canary_at_every_step_and_nobody_at_zero(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path, mode: str
) -> None:
    # Testers send `X-Canary: always` and get the canary from the first step on, whatever the
    # weight; a rollback (weight 0) takes them off it too.
    route = HeaderRoute(header="X-Canary", value="always")
    config = make_config("nginx", tmp_path / "nginx0", backends, mode=mode, key="$http_x_user")
    config = config.model_copy(update={"header_route": route})
    nginx = nginx_factory("$shiprail_checkout", render(config, 0))
    router = NginxRouter(config.model_copy(update={"nginx_binary": nginx.binary}), "checkout")

    def tester(i: int) -> dict[str, str]:
        return {"X-Canary": "always", "X-User": f"tester-{i}"}

    def other(i: int) -> dict[str, str]:
        # The value is matched exactly, case included: "Always" or "always2" are not the route.
        return {"X-Canary": ("Always", "always2", "")[i % 3], "X-User": f"user-{i}"}

    assert measure(nginx.url, 30, tester) == {"stable": 30}
    for weight in (1, 10, 50):
        apply(nginx, router, weight)
        assert router.current_weight() == weight
        assert measure(nginx.url, 50, tester) == {"canary": 50}
        # Everyone else still gets the weight's share: exactly (weighted), or by the hash of 300 users.
        others = measure(nginx.url, 300, other)
        p = weight / 100
        assert abs(others["canary"] - 300 * p) <= 4 * (300 * p * (1 - p)) ** 0.5 + 2, (weight, others)
    apply(nginx, router, 0)
    assert measure(nginx.url, 50, tester) == {"stable": 50}
    assert measure(nginx.url, 30, other) == {"stable": 30}


def test_a_variable_another_service_defines_too_is_refused_not_silently_shared(
    nginx_factory: Callable[[str, str], Nginx], backends: Backends, tmp_path: Path
) -> None:
    # Upstreams `a-b` and `a_b` both make $shiprail_a_b: nginx takes a variable defined twice
    # without a word, and would route one service by the other's split.
    config = make_config("nginx", tmp_path / "nginx0", backends, mode="split_clients", upstream="a-b")
    nginx = nginx_factory("$shiprail_a_b", render(config, 0))
    router = NginxRouter(config.model_copy(update={"nginx_binary": nginx.binary}), "ab")
    apply(nginx, router, 10)
    other_file = nginx.include_file.parent / "other.conf"
    other = NginxRouter(router.config.model_copy(update={"include_file": str(other_file), "upstream": "a_b"}), "a_b")
    with pytest.raises(RouterError) as caught:
        other.set_weight(50)
    assert caught.value.message == (
        f"$shiprail_a_b, which {other_file} defines, is defined in {nginx.include_file} too, and nginx would "
        "route by one of them without a word; rename one service's upstream, so the previous file was put back"
    )
    assert not other_file.exists()  # put back as it was: not there
    assert router.current_weight() == 10
    apply(nginx, router, 50)  # the service that was there first still moves


def test_defined_elsewhere_reads_the_blocks_that_define_variables() -> None:
    from shiprail.routers.nginx import defined_elsewhere

    dump = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "http { include /etc/nginx/conf.d/*.conf; }\n"
        "# configuration file /etc/nginx/conf.d/a.conf:\n"
        'split_clients "$cookie_user" $shiprail_a {\n'
        "# configuration file /etc/nginx/conf.d/b.conf:\n"
        "map $http_x_canary $shiprail_a {  # a comment\n"
        "geo $shiprail_geo {\n"
        "# map $x $shiprail_a {\n"
    )
    names = {"shiprail_a", "shiprail_geo"}
    assert defined_elsewhere(dump, Path("/etc/nginx/conf.d/a.conf"), names) == [
        ("shiprail_a", "/etc/nginx/conf.d/b.conf"),
        ("shiprail_geo", "/etc/nginx/conf.d/b.conf"),
    ]
    assert defined_elsewhere(dump, Path("/etc/nginx/conf.d/b.conf"), names) == [
        ("shiprail_a", "/etc/nginx/conf.d/a.conf")
    ]
