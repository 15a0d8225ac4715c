"""The OpenFeature provider: variants as string/boolean flags, reasons, defaults, type mismatches."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode, ProviderNotReadyError
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus

from shiprail.sdk import Client
from shiprail.sdk.openfeature import ShiprailProvider


def config(weight: float = 50, revision: int = 3) -> dict[str, Any]:
    return {
        "service": "checkout",
        "revision": revision,
        "release": "rel-42",
        "stable": "1.4.0",
        "canary": "1.5.0",
        "weight": weight,
        "salt": "rel-42",
    }


def unready_client() -> Client:
    # Never polled: no config, and the transport is never called.
    return Client("http://shiprail.test", "checkout", "key", start=False, transport=httpx.MockTransport(_no_calls))


def _no_calls(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.method} {request.url}")


@pytest.fixture(autouse=True)
def clean_api() -> Iterator[None]:
    yield
    api.shutdown()
    api.clear_providers()


def ctx(key: str | None) -> EvaluationContext:
    return EvaluationContext(targeting_key=key)


def test_metadata() -> None:
    assert ShiprailProvider(Client.from_config(config())).get_metadata().name == "shiprail"


def test_keyed_string_and_boolean() -> None:
    client = Client.from_config(config())
    provider = ShiprailProvider(client)
    answers = set()
    for i in range(200):
        key = f"user-{i}"
        variant = client.variant(key)
        answers.add(variant)
        details = provider.resolve_string_details("checkout", "stable", ctx(key))
        assert details.value == variant and details.variant == variant
        assert details.reason == Reason.TARGETING_MATCH and details.error_code is None
        assert details.flag_metadata == {"service": "checkout", "revision": 3, "version": client.version(key)}
        flag = provider.resolve_boolean_details("checkout", False, ctx(key))
        assert flag.value is (variant == "canary") and flag.variant == variant
        assert flag.reason == Reason.TARGETING_MATCH
    assert answers == {"stable", "canary"}


def test_keyless_reasons() -> None:
    split = ShiprailProvider(Client.from_config(config(weight=50)))
    assert split.resolve_string_details("checkout", "x", ctx(None)).reason == Reason.SPLIT
    assert split.resolve_string_details("checkout", "x", None).reason == Reason.SPLIT
    assert split.resolve_string_details("checkout", "x", ctx("")).reason == Reason.SPLIT
    everyone = ShiprailProvider(Client.from_config(config(weight=100)))
    details = everyone.resolve_boolean_details("checkout", False, None)
    assert details.value is True and details.reason == Reason.STATIC
    nobody = ShiprailProvider(Client.from_config(config(weight=0)))
    answer = nobody.resolve_string_details("checkout", "x", None)
    assert answer.value == "stable" and answer.reason == Reason.STATIC
    assert answer.flag_metadata["version"] == "1.4.0"


def test_no_config_yet_gives_the_default_flagged_not_ready() -> None:
    provider = ShiprailProvider(unready_client(), init_timeout=0)
    details = provider.resolve_string_details("checkout", "fallback", ctx("user-1"))
    assert (details.value, details.reason, details.error_code) == (
        "fallback",
        Reason.ERROR,
        ErrorCode.PROVIDER_NOT_READY,
    )
    assert details.variant is None
    assert details.error_message == "no shiprail config yet: the default until the first one arrives"
    flag = provider.resolve_boolean_details("checkout", True, ctx("user-1"))
    assert (flag.value, flag.reason, flag.error_code) == (True, Reason.ERROR, ErrorCode.PROVIDER_NOT_READY)


@pytest.mark.parametrize(
    ("method", "default"),
    [("resolve_integer_details", 7), ("resolve_float_details", 0.5), ("resolve_object_details", {"a": 1})],
)
def test_other_types_mismatch(method: str, default: Any) -> None:
    provider = ShiprailProvider(Client.from_config(config()))
    details = getattr(provider, method)("checkout", default, ctx("user-1"))
    assert details.value == default
    assert details.error_code == ErrorCode.TYPE_MISMATCH
    assert details.reason == Reason.ERROR
    assert details.error_message


def test_through_the_openfeature_api() -> None:
    client = Client.from_config(config())
    api.set_provider_and_wait(ShiprailProvider(client))
    flags = api.get_client()
    for i in range(50):
        key = f"user-{i}"
        assert flags.get_string_value("checkout", "stable", ctx(key)) == client.variant(key)
        details = flags.get_boolean_details("checkout", False, ctx(key))
        assert details.value is (client.variant(key) == "canary")
        assert details.variant == client.variant(key)
        assert details.flag_metadata["revision"] == 3
    assert flags.get_integer_details("checkout", 3, ctx("user-1")).error_code == ErrorCode.TYPE_MISMATCH


def late_client(configs: list[dict[str, Any]]) -> Client:
    """A client whose polls (``poll_once``) answer the configs in turn; none before the first poll."""

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=configs.pop(0), headers={"ETag": '"1"'})

    return Client("http://shiprail.test", "checkout", "key", start=False, transport=httpx.MockTransport(serve))


def test_initialize_waits_for_the_first_config_and_says_when_none_came(caplog: pytest.LogCaptureFixture) -> None:
    provider = ShiprailProvider(unready_client(), init_timeout=0.01)
    with caplog.at_level(logging.WARNING, "shiprail.sdk"), pytest.raises(ProviderNotReadyError) as late:
        provider.initialize(EvaluationContext())
    assert str(late.value) == (
        "no shiprail config for checkout within 0.01s; flags resolve to their defaults until one arrives"
    )
    assert "no shiprail config for checkout" in caplog.text
    ShiprailProvider(Client.from_config(config())).initialize(EvaluationContext())  # ready: returns at once


def handled(events: list[Any], count: int) -> None:
    """Wait until ``count`` events were handled: OpenFeature runs handlers on a thread pool of its own,
    so a test waits for each before causing the next (else two may run in either order)."""
    deadline = time.monotonic() + 5
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(events) >= count, events


def test_a_late_config_makes_the_provider_ready_and_every_new_one_is_announced() -> None:
    client = late_client([config(weight=10, revision=4), config(weight=0, revision=5)])
    provider = ShiprailProvider(client, init_timeout=0.01)
    with pytest.raises(ProviderNotReadyError):
        api.set_provider_and_wait(provider)
    # Added now, an ERROR handler runs at once (the provider is in ERROR); READY has not happened yet.
    events: list[tuple[ProviderEvent, list[str] | None, str | None]] = []
    for kind in (
        ProviderEvent.PROVIDER_READY,
        ProviderEvent.PROVIDER_ERROR,
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
    ):
        api.add_handler(kind, lambda d, kind=kind: events.append((kind, d.flags_changed, d.message)))
    flags = api.get_client()
    assert flags.get_provider_status() == ProviderStatus.ERROR
    assert flags.get_boolean_details("checkout", False, ctx("user-1")).error_code == ErrorCode.PROVIDER_NOT_READY
    handled(events, 1)

    assert client.poll_once() == 200  # the config arrives: READY, with what it holds
    assert flags.get_provider_status() == ProviderStatus.READY
    assert flags.get_boolean_details("checkout", False, ctx("user-1")).error_code is None
    handled(events, 2)
    assert client.poll_once() == 200  # a rollback: the configuration changed
    assert flags.get_boolean_value("checkout", True, ctx("user-1")) is False
    handled(events, 3)
    assert [e[0] for e in events] == [
        ProviderEvent.PROVIDER_ERROR,
        ProviderEvent.PROVIDER_READY,
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
    ]
    assert events[1:] == [
        (ProviderEvent.PROVIDER_READY, ["checkout"], "revision 4: weight 10"),
        (ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, ["checkout"], "revision 5: weight 0"),
    ]


def test_shutdown_closes_the_client_unless_told_not_to() -> None:
    posts: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request)
            return httpx.Response(202, json={"stored": 1})
        return httpx.Response(200, json=config())

    client = Client("http://shiprail.test", "checkout", "key", start=False, transport=httpx.MockTransport(serve))
    client.poll_once()
    client.record("canary", True, 0.01)
    ShiprailProvider(client, close_client=False).shutdown()
    assert posts == []
    ShiprailProvider(client).shutdown()
    assert len(posts) == 1  # close() posted the pending outcome


def test_cut_off_past_max_stale_is_announced_as_stale_and_resolved_with_reason_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shiprail.sdk import client as client_module

    now = [1000.0]
    monkeypatch.setattr(client_module, "_monotonic", lambda: now[0])
    answers: list[httpx.Response | Exception] = [
        httpx.Response(200, json=config(weight=100), headers={"ETag": '"3"'}),
        httpx.ConnectError("connection refused"),
        httpx.Response(304),
    ]

    def serve(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = Client(
        "http://shiprail.test", "checkout", "key", start=False, max_stale=60, transport=httpx.MockTransport(serve)
    )
    assert client.poll_once() == 200
    api.set_provider_and_wait(ShiprailProvider(client))
    events: list[tuple[ProviderEvent, str | None]] = []
    for kind in (ProviderEvent.PROVIDER_STALE, ProviderEvent.PROVIDER_READY):
        api.add_handler(kind, lambda d, kind=kind: events.append((kind, d.message)))
    handled(events, 1)  # a READY handler added to a ready provider runs at once (on OpenFeature's pool)
    assert events == [(ProviderEvent.PROVIDER_READY, None)]
    events.clear()
    flags = api.get_client()
    assert flags.get_string_details("checkout", "stable", ctx("user-1")).value == "canary"

    now[0] += 100
    assert client.poll_once() == 0  # 100 s without a word: every key gets stable
    details = flags.get_string_details("checkout", "stable", ctx("user-1"))
    assert (details.value, details.reason) == ("stable", Reason.STALE)
    assert flags.get_provider_status() == ProviderStatus.STALE
    handled(events, 1)
    now[0] += 5
    assert client.poll_once() == 304  # serve again: its revision 3 still holds
    details = flags.get_string_details("checkout", "stable", ctx("user-1"))
    assert (details.value, details.reason) == ("canary", Reason.TARGETING_MATCH)
    handled(events, 2)
    assert events == [
        (ProviderEvent.PROVIDER_STALE, "no word from shiprail for over 60s: every key gets the stable version"),
        (ProviderEvent.PROVIDER_READY, "shiprail reached again: revision 3, weight 100"),
    ]
    assert flags.get_provider_status() == ProviderStatus.READY


def test_a_flag_other_than_the_rollout_is_not_found() -> None:
    # Every flag key used to resolve to the service's rollout: with the provider set as the app's
    # default, `dark-mode` or `new-search` turned on for the canary's users.
    client = Client.from_config(config(weight=100))
    api.set_provider_and_wait(ShiprailProvider(client))
    flags = api.get_client()
    assert flags.get_boolean_value("checkout", False, ctx("user-1")) is True
    for get, default in ((flags.get_boolean_details, False), (flags.get_string_details, "off")):
        details = get("dark-mode", default, ctx("user-1"))
        assert (details.value, details.reason, details.error_code, details.variant) == (
            default,
            Reason.ERROR,
            ErrorCode.FLAG_NOT_FOUND,
            None,
        )
        assert details.error_message == (
            "shiprail serves one flag here, 'checkout' (the rollout of service checkout), not 'dark-mode'"
        )
    assert flags.get_integer_details("dark-mode", 3).error_code == ErrorCode.FLAG_NOT_FOUND


def test_the_rollout_may_keep_the_flag_key_the_app_already_evaluates() -> None:
    client = Client.from_config(config(weight=100))
    provider = ShiprailProvider(client, flag_key="checkout-v2-rollout")
    assert provider.resolve_boolean_details("checkout-v2-rollout", False, ctx("user-1")).value is True
    missing = provider.resolve_boolean_details("checkout", False, ctx("user-1"))
    assert (missing.value, missing.error_code) == (False, ErrorCode.FLAG_NOT_FOUND)


def test_a_flag_key_the_provider_does_not_serve_is_named_in_the_log_once(caplog: pytest.LogCaptureFixture) -> None:
    # An app written when every key resolved to the rollout (`checkout-v2-rollout`, as the docs then
    # allowed) got its default for every user once upgraded, with nothing in its log: OpenFeature
    # logs no FLAG_NOT_FOUND, so the canary silently lost its users. The first evaluation of each
    # such key now says so, once, with the fix.
    client = Client.from_config(config(weight=100))
    api.set_provider_and_wait(ShiprailProvider(client))
    flags = api.get_client()
    with caplog.at_level(logging.WARNING, logger="shiprail.sdk.openfeature"):
        for _ in range(3):
            assert flags.get_boolean_value("checkout-v2-rollout", False, ctx("user-1")) is False
            assert flags.get_string_value("dark-mode", "off", ctx("user-1")) == "off"
        assert flags.get_boolean_value("checkout", False, ctx("user-1")) is True
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"shiprail serves one flag here, 'checkout' (the rollout of service checkout), not {key!r}: it resolves "
            f"to its default (FLAG_NOT_FOUND); if {key!r} is the rollout, pass "
            f"ShiprailProvider(client, flag_key={key!r})",
        )
        for key in ("checkout-v2-rollout", "dark-mode")
    ]
