"""nginx router: weighted upstream servers (or ``split_clients`` for sticky cohorts)."""

from __future__ import annotations

from typing import Literal

from shiprail.schema.base import StrictModel


class NginxRouterConfig(StrictModel):
    """Where the include file goes and what it routes between.

    shiprail writes ``include_file`` atomically, checks the whole configuration with ``nginx -t``
    and reloads nginx; the file is the single source of truth for the current weight.
    """

    type: Literal["nginx"]
    include_file: str
    upstream: str
    stable: str
    canary: str
    mode: Literal["weighted", "split_clients"] = "weighted"
    key: str = "$remote_addr"
    nginx_binary: str = "nginx"
    conf: str | None = None
