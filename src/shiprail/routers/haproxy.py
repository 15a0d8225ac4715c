"""HAProxy router: server weights changed through the runtime API, without a reload."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shiprail.schema.base import StrictModel


class HaproxyRouterConfig(StrictModel):
    """The admin socket (a path or ``host:port``) and the backend's two servers."""

    type: Literal["haproxy"] = Field(description="`haproxy`.")
    socket: str = Field(description="The runtime API socket: a path or host:port.")
    backend: str = Field(description="The backend holding both servers.")
    stable_server: str = Field(description="The stable version's server name in the backend.")
    canary_server: str = Field(description="The canary version's server name in the backend.")
