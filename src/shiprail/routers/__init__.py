"""Traffic routers: how a service's traffic is split between stable and canary.

Each router lives in its own module with its configuration model; ``RouterConfig`` is the union
a service file may name by ``type``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shiprail.routers.command import CommandRouterConfig
from shiprail.routers.flag import FlagRouterConfig
from shiprail.routers.haproxy import HaproxyRouterConfig
from shiprail.routers.nginx import NginxRouterConfig

RouterConfig = Annotated[
    NginxRouterConfig | HaproxyRouterConfig | CommandRouterConfig | FlagRouterConfig,
    Field(discriminator="type"),
]

__all__ = [
    "CommandRouterConfig",
    "FlagRouterConfig",
    "HaproxyRouterConfig",
    "NginxRouterConfig",
    "RouterConfig",
]
