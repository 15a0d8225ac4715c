"""An OpenFeature provider backed by the shiprail SDK, so an app switches vendors with one line:

    from openfeature import api
    from shiprail.sdk import Client
    from shiprail.sdk.openfeature import ShiprailProvider

    api.set_provider(ShiprailProvider(Client(url, "checkout", sdk_key)))
    flags = api.get_client()
    if flags.get_boolean_value("checkout", False, EvaluationContext(targeting_key=user_id)):
        ...  # the canary

A shiprail client serves one service's rollout, so the flag key is not interpreted: every key resolves
to that rollout. String flags resolve to the variant ("stable" or "canary"), boolean flags to
"is this the canary"; numeric and object flags are a type mismatch. The evaluation context's
``targeting_key`` is the sticky key; without one each evaluation is decided at random by weight.

Needs the ``openfeature-sdk`` package (imported here only, never by ``shiprail.sdk`` itself).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from shiprail.defaults import SDK_TIMEOUT_SECONDS
from shiprail.sdk.client import Client, Decision
from shiprail.sdk.hashing import CANARY

log = logging.getLogger(__name__)

PROVIDER_NAME: Final = "shiprail"

_T = TypeVar("_T")


class ShiprailProvider(AbstractProvider):
    """Resolves OpenFeature flags from a shiprail ``Client``'s local decisions (no network per call)."""

    def __init__(self, client: Client, *, init_timeout: float = SDK_TIMEOUT_SECONDS, close_client: bool = True) -> None:
        """Wrap ``client``.

        ``initialize()`` (run by ``api.set_provider``) waits up to ``init_timeout`` seconds for the first
        config, so ``set_provider_and_wait`` returns with the rollout known; until then flags resolve to
        their defaults. With ``close_client`` (the default) ``shutdown()`` closes the client, which posts
        its pending outcomes.
        """
        super().__init__()
        self.client: Final = client
        self._init_timeout = init_timeout
        self._close_client = close_client

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        # Not an error when the config is late: the client keeps trying and flags fall back to their
        # defaults meanwhile, which is the SDK's designed behaviour, not a broken provider.
        if not self.client.wait_ready(self._init_timeout):
            log.warning(
                "no shiprail config for %s within %gs; flags resolve to their defaults until one arrives",
                self.client.service,
                self._init_timeout,
            )

    def shutdown(self) -> None:
        if self._close_client:
            self.client.close()

    def _decide(
        self, evaluation_context: EvaluationContext | None
    ) -> tuple[Decision, Reason, dict[str, bool | int | float | str]]:
        """The client's decision for the context, the OpenFeature reason and the flag metadata."""
        key = evaluation_context.targeting_key if evaluation_context is not None else None
        decision = self.client.evaluate(key)
        if key is not None:
            reason = Reason.TARGETING_MATCH  # the key's hash bucket against the weight: sticky per key
        elif 0 < decision.weight < 100:
            reason = Reason.SPLIT  # no key: a weighted coin toss per evaluation
        else:
            reason = Reason.STATIC  # weight 0 or 100: every evaluation gets the same answer
        metadata: dict[str, bool | int | float | str] = {"service": self.client.service, "revision": decision.revision}
        if decision.version is not None:
            metadata["version"] = decision.version
        return decision, reason, metadata

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """True when the context is served the canary; ``default_value`` before the first config."""
        decision, reason, metadata = self._decide(evaluation_context)
        if not decision.ready:
            return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
        value = decision.variant == CANARY
        return FlagResolutionDetails(value=value, reason=reason, variant=decision.variant, flag_metadata=metadata)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """ "stable" or "canary" for the context; ``default_value`` before the first config."""
        decision, reason, metadata = self._decide(evaluation_context)
        if not decision.ready:
            return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
        return FlagResolutionDetails(
            value=decision.variant, reason=reason, variant=decision.variant, flag_metadata=metadata
        )

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """Always the default with TYPE_MISMATCH: a rollout is a variant, not a number."""
        return _mismatch(flag_key, default_value, "an integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Always the default with TYPE_MISMATCH: a rollout is a variant, not a number."""
        return _mismatch(flag_key, default_value, "a float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """Always the default with TYPE_MISMATCH: a rollout is a variant, not an object."""
        return _mismatch(flag_key, default_value, "an object")


def _mismatch(flag_key: str, default_value: _T, kind: str) -> FlagResolutionDetails[_T]:
    """The default, flagged TYPE_MISMATCH: shiprail answers only string and boolean flags."""
    return FlagResolutionDetails(
        value=default_value,
        reason=Reason.ERROR,
        error_code=ErrorCode.TYPE_MISMATCH,
        error_message=f"shiprail flag {flag_key!r} is a string or boolean (the variant), not {kind}",
    )
