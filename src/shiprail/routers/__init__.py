"""Traffic routers: how a service's traffic is split between stable and canary.

Each router lives in its own module with its configuration model; ``RouterConfig`` is the union
a service file may name by ``type``, and ``build_router`` makes the router a config describes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from shiprail.routers.base import Router, RouterError
from shiprail.routers.command import CommandRouter, CommandRouterConfig
from shiprail.routers.flag import FlagRouter, FlagRouterConfig
from shiprail.routers.haproxy import HaproxyRouter, HaproxyRouterConfig, server_weights
from shiprail.routers.nginx import NginxRouter, NginxRouterConfig, check_weight

if TYPE_CHECKING:
    from shiprail.clock import Clock
    from shiprail.store.db import Store

RouterConfig = Annotated[
    NginxRouterConfig | HaproxyRouterConfig | CommandRouterConfig | FlagRouterConfig,
    Field(discriminator="type"),
]


@dataclass(frozen=True)
class RouterContext:
    """What a router is built for: one release of a service, and the store and clock it may use."""

    service: str
    version: str
    baseline: str
    release: str | None = None
    store: Store | None = None
    clock: Clock | None = None


def _nginx(config: Any, ctx: RouterContext) -> Router:
    return NginxRouter(config, ctx.service)


def _haproxy(config: Any, ctx: RouterContext) -> Router:
    return HaproxyRouter(config)


def _command(config: Any, ctx: RouterContext) -> Router:
    return CommandRouter(config, ctx.service, ctx.version, baseline=ctx.baseline)


def _flag(config: Any, ctx: RouterContext) -> Router:
    if ctx.store is None or ctx.clock is None or ctx.release is None:
        raise RouterError("the flag router publishes into the store: build it with the release, store and clock")
    return FlagRouter(
        config,
        store=ctx.store,
        clock=ctx.clock,
        service=ctx.service,
        release=ctx.release,
        version=ctx.version,
        baseline=ctx.baseline,
    )


ROUTERS: dict[str, Callable[[Any, RouterContext], Router]] = {
    "nginx": _nginx,
    "haproxy": _haproxy,
    "command": _command,
    "flag": _flag,
}
"""Router factories by the ``type`` a service file names."""


WEIGHT_CHECKS: dict[str, Callable[[float], object]] = {
    "nginx": check_weight,
    "haproxy": server_weights,
}
"""Per router type, the check ``set_weight`` runs on a weight first (``RouterError`` if it can never apply it)."""


def weight_problem(
    config: NginxRouterConfig | HaproxyRouterConfig | CommandRouterConfig | FlagRouterConfig, weight: float
) -> str | None:
    """Why the router ``config`` describes could never apply ``weight``, or None.

    Asked when a plan is checked, so that a step HAProxy cannot represent (it splits in 0.5 %
    steps) is refused in review, not found when the rollout reaches it and stalls there.
    """
    check = WEIGHT_CHECKS.get(config.type)
    if check is None:
        return None
    try:
        check(weight)
    except RouterError as exc:
        return exc.message
    return None


def build_router(
    config: NginxRouterConfig | HaproxyRouterConfig | CommandRouterConfig | FlagRouterConfig,
    *,
    service: str,
    version: str,
    baseline: str,
    release: str | None = None,
    store: Store | None = None,
    clock: Clock | None = None,
) -> Router:
    """The router ``config`` describes, for one release of ``service`` (``version`` against ``baseline``).

    ``release``, ``store`` and ``clock`` are needed by routers that keep state in shiprail's store
    (``flag``); the others ignore them.
    """
    factory = ROUTERS.get(config.type)
    if factory is None:
        raise RouterError(f"there is no router of type {config.type!r}")
    return factory(config, RouterContext(service, version, baseline, release, store, clock))


__all__ = [
    "ROUTERS",
    "CommandRouter",
    "CommandRouterConfig",
    "FlagRouter",
    "FlagRouterConfig",
    "HaproxyRouter",
    "HaproxyRouterConfig",
    "NginxRouter",
    "NginxRouterConfig",
    "Router",
    "RouterConfig",
    "RouterContext",
    "RouterError",
    "build_router",
    "weight_problem",
]
