"""The HAProxy router against a real HAProxy: shares of traffic through the runtime API, read
back with ``get weight``, over a unix and a TCP admin socket, and its errors."""

from __future__ import annotations

import pytest

from shiprail.routers import HaproxyRouter, HaproxyRouterConfig, RouterError

from .conftest import Haproxy, measure

REQUESTS = 1000
WEIGHTS = [1, 10, 50, 100, 0]  # the default rollout, then a rollback


def router(socket: str, backend: str = "checkout", canary: str = "canary") -> HaproxyRouter:
    return HaproxyRouter(
        HaproxyRouterConfig(
            type="haproxy", socket=socket, backend=backend, stable_server="stable", canary_server=canary
        )
    )


def test_weights_split_traffic_in_the_set_shares(haproxy: Haproxy) -> None:
    r = router(str(haproxy.socket))
    assert r.current_weight() == 0  # the configuration's weights: stable 100, canary 0
    assert measure(haproxy.url, 200) == {"stable": 200}
    seen = {}
    for weight in WEIGHTS:
        r.set_weight(weight)
        assert r.current_weight() == weight
        counts = measure(haproxy.url, REQUESTS)
        seen[weight] = counts["canary"]
        # Weighted round-robin over server weights that add up to 200: exact up to a partial cycle.
        assert abs(counts["canary"] - REQUESTS * weight / 100) <= 2, (weight, counts)
    print(f"canary responses out of {REQUESTS}: {seen}")
    assert seen[100] == REQUESTS and seen[0] == 0


def test_get_weight_reads_back_what_was_set(haproxy: Haproxy) -> None:
    r = router(str(haproxy.socket))
    r.set_weight(10)
    assert r.command("get weight checkout/canary").strip() == "20 (initial 0)"
    assert r.command("get weight checkout/stable").strip() == "180 (initial 100)"
    assert r.weights() == (180, 20)
    r.set_weight(0.5)
    assert r.weights() == (199, 1) and r.current_weight() == 0.5


def test_the_tcp_admin_socket_works_too(haproxy: Haproxy) -> None:
    r = router(haproxy.admin_address)
    r.set_weight(50)
    assert router(str(haproxy.socket)).current_weight() == 50
    counts = measure(haproxy.url, 200)
    assert counts == {"stable": 100, "canary": 100}


def test_setting_the_same_weight_again_changes_nothing(haproxy: Haproxy) -> None:
    r = router(str(haproxy.socket))
    r.set_weight(10)
    sent: list[str] = []
    original = r.command

    def spy(line: str) -> str:
        sent.append(line)
        return original(line)

    r.command = spy  # type: ignore[method-assign]
    r.set_weight(10)
    assert all(line.startswith("get weight") for line in sent), sent
    assert r.current_weight() == 10


def test_an_unknown_backend_or_server_is_a_router_error(haproxy: Haproxy) -> None:
    with pytest.raises(RouterError, match="did not return a weight for nope/stable: No such backend") as caught:
        router(str(haproxy.socket), backend="nope").set_weight(10)
    print(caught.value.message)
    with pytest.raises(RouterError, match="No such server"):
        router(str(haproxy.socket), canary="ghost").current_weight()
    assert router(str(haproxy.socket)).current_weight() == 0, "a failed call changed the weights"


def test_a_static_algorithm_refuses_the_weights(haproxy: Haproxy) -> None:
    with pytest.raises(RouterError, match=r"HAProxy refused weight .* for static/canary") as caught:
        router(str(haproxy.socket), backend="static").set_weight(10)
    print(caught.value.message)


def test_an_unreachable_socket_is_a_router_error(haproxy: Haproxy) -> None:
    with pytest.raises(RouterError, match="cannot reach the HAProxy runtime API"):
        router(str(haproxy.socket) + ".missing").current_weight()
    with pytest.raises(RouterError, match=r"steps of 0\.5%"):
        router(str(haproxy.socket)).set_weight(0.1)


def test_the_documented_header_route_follows_the_canary_weight(haproxy: Haproxy) -> None:
    # docs/routers.md's HAProxy header route (in this HAProxy's configuration): `X-Canary: always`
    # reaches the canary at every step, and nobody once the router sets weight 0 (a rollback).
    r = router(str(haproxy.socket))

    def tester(i: int) -> dict[str, str]:
        return {"X-Canary": "always"}

    def other(i: int) -> dict[str, str]:
        return {"X-Canary": ("Always", "always2", "")[i % 3]}  # matched exactly, case included

    assert measure(haproxy.url, 30, tester) == {"stable": 30}
    for weight in (1, 10, 50):
        r.set_weight(weight)
        assert measure(haproxy.url, 50, tester) == {"canary": 50}
        others = measure(haproxy.url, 200, other)
        assert abs(others["canary"] - 200 * weight / 100) <= 2, (weight, others)
    r.set_weight(0)
    assert measure(haproxy.url, 50, tester) == {"stable": 50}
