"""Flag router: an in-app percentage rollout served by shiprail to its SDKs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shiprail.schema.base import StrictModel


class FlagRouterConfig(StrictModel):
    """Apps hash a stable key with ``salt`` into a sticky cohort; ``sdk_key_env`` holds their key."""

    type: Literal["flag"] = Field(description="`flag`.")
    salt: str | None = Field(None, description="Mixed into the hash of each stable key.")
    sdk_key_env: str = Field("SHIPRAIL_SDK_KEY", description="The environment variable holding the key SDKs use.")
