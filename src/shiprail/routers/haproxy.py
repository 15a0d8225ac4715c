"""HAProxy router: server weights changed through the runtime API, without a reload."""

from __future__ import annotations

from typing import Literal

from shiprail.schema.base import StrictModel


class HaproxyRouterConfig(StrictModel):
    """The admin socket (a path or ``host:port``) and the backend's two servers."""

    type: Literal["haproxy"]
    socket: str
    backend: str
    stable_server: str
    canary_server: str
