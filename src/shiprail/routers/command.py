"""Command router: the user's script applies the weight it finds in its environment."""

from __future__ import annotations

from typing import Literal

from shiprail.schema.base import Duration, StrictModel


class CommandRouterConfig(StrictModel):
    """``set`` applies ``SHIPRAIL_WEIGHT``; ``get`` (optional) prints the current weight."""

    type: Literal["command"]
    set: str
    get: str | None = None
    timeout: Duration = 30
