"""Traffic routers: how a service's traffic is split between stable and canary.

Each router lives in its own module with its configuration model; ``RouterConfig`` is the union
a service file may name by ``type``, and ``build_router`` makes the router a config describes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from shiprail.routers.base import Router, RouterError
from shiprail.routers.command import CommandRouter, CommandRouterConfig
from shiprail.routers.flag import FlagRouterConfig
from shiprail.routers.haproxy import HaproxyRouter, HaproxyRouterConfig
from shiprail.routers.nginx import NginxRouter, NginxRouterConfig

RouterConfig = Annotated[
    NginxRouterConfig | HaproxyRouterConfig | CommandRouterConfig | FlagRouterConfig,
    Field(discriminator="type"),
]


def _nginx(config: Any, service: str, version: str, baseline: str) -> Router:
    return NginxRouter(config, service)


def _haproxy(config: Any, service: str, version: str, baseline: str) -> Router:
    return HaproxyRouter(config)


def _command(config: Any, service: str, version: str, baseline: str) -> Router:
    return CommandRouter(config, service, version, baseline=baseline)


def _flag(config: Any, service: str, version: str, baseline: str) -> Router:
    raise RouterError("the flag router comes with shiprail serve")


ROUTERS: dict[str, Callable[[Any, str, str, str], Router]] = {
    "nginx": _nginx,
    "haproxy": _haproxy,
    "command": _command,
    "flag": _flag,
}
"""Router factories by the ``type`` a service file names."""


def build_router(
    config: NginxRouterConfig | HaproxyRouterConfig | CommandRouterConfig | FlagRouterConfig,
    *,
    service: str,
    version: str,
    baseline: str,
) -> Router:
    """The router ``config`` describes, for one release of ``service`` (``version`` against ``baseline``)."""
    factory = ROUTERS.get(config.type)
    if factory is None:
        raise RouterError(f"there is no router of type {config.type!r}")
    return factory(config, service, version, baseline)


__all__ = [
    "ROUTERS",
    "CommandRouter",
    "CommandRouterConfig",
    "FlagRouterConfig",
    "HaproxyRouter",
    "HaproxyRouterConfig",
    "NginxRouter",
    "NginxRouterConfig",
    "Router",
    "RouterConfig",
    "RouterError",
    "build_router",
]
