"""Command router: the user's script applies the weight it finds in its environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shiprail.schema.base import Duration, StrictModel


class CommandRouterConfig(StrictModel):
    """``set`` applies ``SHIPRAIL_WEIGHT``; ``get`` (optional) prints the current weight."""

    type: Literal["command"] = Field(description="`command`.")
    set: str = Field(description="The command that applies the weight it finds in SHIPRAIL_WEIGHT.")
    get: str | None = Field(None, description="A command that prints the current weight.")
    timeout: Duration = Field(30, description="The longest either command may run.")
