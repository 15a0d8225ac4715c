"""Flag router: an in-app percentage rollout served by shiprail to its SDKs."""

from __future__ import annotations

from typing import Literal

from shiprail.schema.base import StrictModel


class FlagRouterConfig(StrictModel):
    """Apps hash a stable key with ``salt`` into a sticky cohort; ``sdk_key_env`` holds their key."""

    type: Literal["flag"]
    salt: str | None = None
    sdk_key_env: str = "SHIPRAIL_SDK_KEY"
