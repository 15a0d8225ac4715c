"""nginx router: weighted upstream servers (or ``split_clients`` for sticky cohorts)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shiprail.schema.base import StrictModel


class NginxRouterConfig(StrictModel):
    """Where the include file goes and what it routes between.

    shiprail writes ``include_file`` atomically, checks the whole configuration with ``nginx -t``
    and reloads nginx; the file is the single source of truth for the current weight.
    """

    type: Literal["nginx"] = Field(description="`nginx`.")
    include_file: str = Field(
        description="The file shiprail writes the split into; include it in the nginx configuration."
    )
    upstream: str = Field(description="The name of the upstream the include file defines.")
    stable: str = Field(description="The stable version's server (host:port).")
    canary: str = Field(description="The canary version's server (host:port).")
    mode: Literal["weighted", "split_clients"] = Field(
        "weighted", description="`weighted` upstream servers, or `split_clients` for sticky cohorts."
    )
    key: str = Field("$remote_addr", description="The nginx variable `split_clients` hashes into cohorts.")
    nginx_binary: str = Field("nginx", description="The nginx executable, for `nginx -t` and reloads.")
    conf: str | None = Field(None, description="The main nginx configuration file, when not nginx's default.")
