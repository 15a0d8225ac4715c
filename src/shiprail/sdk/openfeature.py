"""An OpenFeature provider backed by the shiprail SDK, so an app switches vendors with one line:

    from openfeature import api
    from shiprail.sdk import Client
    from shiprail.sdk.openfeature import ShiprailProvider

    api.set_provider(ShiprailProvider(Client(url, "checkout", sdk_key)))
    flags = api.get_client()
    if flags.get_boolean_value("checkout", False, EvaluationContext(targeting_key=user_id)):
        ...  # the canary

A shiprail client serves one service's rollout: one flag, named after the service (or ``flag_key``).
Any other flag key resolves to its default with ``FLAG_NOT_FOUND``, so with this provider set as the
app's default, its other flags never follow the rollout's cohort. String flags resolve to the
variant ("stable" or "canary"), boolean flags to "is this the canary"; numeric and object flags are
a type mismatch. The evaluation context's ``targeting_key`` is the sticky key; without one each
evaluation is decided at random by weight.

Needs the ``openfeature-sdk`` package (imported here only, never by ``shiprail.sdk`` itself).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from shiprail.defaults import SDK_TIMEOUT_SECONDS, SDK_UNKNOWN_FLAG_WARNINGS
from shiprail.sdk.client import Client, Decision
from shiprail.sdk.hashing import CANARY

log = logging.getLogger(__name__)

PROVIDER_NAME: Final = "shiprail"

_T = TypeVar("_T")


class ShiprailProvider(AbstractProvider):
    """Resolves OpenFeature flags from a shiprail ``Client``'s local decisions (no network per call)."""

    def __init__(
        self,
        client: Client,
        *,
        init_timeout: float = SDK_TIMEOUT_SECONDS,
        close_client: bool = True,
        flag_key: str | None = None,
    ) -> None:
        """Wrap ``client``; its rollout is the flag ``flag_key`` (None: the service's name).

        ``initialize()`` (run by ``api.set_provider``) waits up to ``init_timeout`` seconds for the first
        config, so ``set_provider_and_wait`` returns with the rollout known, or raises
        ``ProviderNotReadyError``; until then flags resolve to their defaults. With ``close_client``
        (the default) ``shutdown()`` closes the client, which posts its pending outcomes.
        """
        super().__init__()
        self.client: Final = client
        self.flag_key: Final = client.service if flag_key is None else flag_key
        self._init_timeout = init_timeout
        self._close_client = close_client
        # Where initialize() stands: "new" (not run), "waiting", "late" (it gave up: the first config
        # to arrive makes the provider READY) or "ready" (later configs are announced as changes).
        self._state = "new"
        self._lock = threading.Lock()
        # The flag keys not served that were logged: OpenFeature says nothing of a FLAG_NOT_FOUND.
        self._unknown_logged: set[str] = set()
        client.subscribe(self._changed)
        client.subscribe_stale(self._stale_changed)

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Wait for the first config; ``ProviderNotReadyError`` when none came within ``init_timeout``.

        OpenFeature then holds the provider in ERROR (``set_provider_and_wait`` raises it) while the
        client keeps polling and flags resolve to their defaults; the first config to arrive emits
        ``PROVIDER_READY``. Every later config (a new weight, a rollback) emits
        ``PROVIDER_CONFIGURATION_CHANGED``.
        """
        with self._lock:
            self._state = "waiting"
        arrived = self.client.wait_ready(self._init_timeout)
        with self._lock:
            arrived = arrived or self.client.ready  # it may have come just now: no error to report
            self._state = "ready" if arrived else "late"
        if arrived:
            return
        message = (
            f"no shiprail config for {self.client.service} within {self._init_timeout:g}s; "
            "flags resolve to their defaults until one arrives"
        )
        log.warning("%s", message)
        raise ProviderNotReadyError(message)

    def _changed(self, config: dict[str, Any]) -> None:
        """The client applied a new config: tell OpenFeature (ready at last, or changed)."""
        with self._lock:
            state = self._state
            if state == "late":
                self._state = "ready"
        if state not in ("late", "ready"):
            return  # before or during initialize(): its return makes the provider READY
        details = ProviderEventDetails(
            flags_changed=[self.flag_key],
            message=f"revision {config['revision']}: weight {config['weight']:g}",
            metadata={"revision": config["revision"], "weight": config["weight"]},
        )
        if state == "late":
            self.emit_provider_ready(details)
        else:
            self.emit_provider_configuration_changed(details)

    def _stale_changed(self, stale: bool) -> None:
        """The client was cut off past ``max_stale`` (every key gets stable), or hears from shiprail again."""
        with self._lock:
            state = self._state
        if state != "ready":
            return
        snap = self.client.evaluate(None)
        if stale:
            message = f"no word from shiprail for over {self.client.max_stale:g}s: every key gets the stable version"
            self.emit_provider_stale(ProviderEventDetails(flags_changed=[self.flag_key], message=message))
        else:  # READY again: OpenFeature leaves STALE on READY only
            self.emit_provider_ready(
                ProviderEventDetails(
                    flags_changed=[self.flag_key],
                    message=f"shiprail reached again: revision {snap.revision}, weight {snap.weight:g}",
                    metadata={"revision": snap.revision, "weight": snap.weight},
                )
            )

    def shutdown(self) -> None:
        if self._close_client:
            self.client.close()

    def _decide(
        self, evaluation_context: EvaluationContext | None
    ) -> tuple[Decision, Reason, dict[str, bool | int | float | str]]:
        """The client's decision for the context, the OpenFeature reason and the flag metadata."""
        # OpenFeature treats an empty targeting key as none: a weighted coin toss, said as SPLIT.
        key = (evaluation_context.targeting_key or None) if evaluation_context is not None else None
        decision = self.client.evaluate(key)
        if self.client.stale:
            reason = Reason.STALE  # cut off past max_stale: everyone gets stable, whatever the weight said
        elif key is not None:
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
        if flag_key != self.flag_key:
            return self._not_found(flag_key, default_value)
        decision, reason, metadata = self._decide(evaluation_context)
        if not decision.ready:
            return _not_ready(default_value)
        value = decision.variant == CANARY
        return FlagResolutionDetails(value=value, reason=reason, variant=decision.variant, flag_metadata=metadata)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """ "stable" or "canary" for the context; ``default_value`` before the first config."""
        if flag_key != self.flag_key:
            return self._not_found(flag_key, default_value)
        decision, reason, metadata = self._decide(evaluation_context)
        if not decision.ready:
            return _not_ready(default_value)
        return FlagResolutionDetails(
            value=decision.variant, reason=reason, variant=decision.variant, flag_metadata=metadata
        )

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """The default with TYPE_MISMATCH: a rollout is a variant, not a number."""
        if flag_key != self.flag_key:
            return self._not_found(flag_key, default_value)
        return _mismatch(flag_key, default_value, "an integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """The default with TYPE_MISMATCH: a rollout is a variant, not a number."""
        if flag_key != self.flag_key:
            return self._not_found(flag_key, default_value)
        return _mismatch(flag_key, default_value, "a float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """The default with TYPE_MISMATCH: a rollout is a variant, not an object."""
        if flag_key != self.flag_key:
            return self._not_found(flag_key, default_value)
        return _mismatch(flag_key, default_value, "an object")

    def _not_found(self, flag_key: str, default_value: _T) -> FlagResolutionDetails[_T]:
        """The default, flagged FLAG_NOT_FOUND: this provider serves its one rollout, no other flag.

        Logged once per key: OpenFeature logs nothing of it, and an app written when every key
        resolved to the rollout would otherwise keep every user on its default without a word.
        """
        message = (
            f"shiprail serves one flag here, {self.flag_key!r} (the rollout of service {self.client.service}), "
            f"not {flag_key!r}"
        )
        if flag_key not in self._unknown_logged and len(self._unknown_logged) < SDK_UNKNOWN_FLAG_WARNINGS:
            self._unknown_logged.add(flag_key)
            log.warning(
                "%s: it resolves to its default (FLAG_NOT_FOUND); if %r is the rollout, pass "
                "ShiprailProvider(client, flag_key=%r)",
                message,
                flag_key,
                flag_key,
            )
        return FlagResolutionDetails(
            value=default_value, reason=Reason.ERROR, error_code=ErrorCode.FLAG_NOT_FOUND, error_message=message
        )


def _not_ready(default_value: _T) -> FlagResolutionDetails[_T]:
    """The default before the first config, flagged PROVIDER_NOT_READY as OpenFeature asks."""
    return FlagResolutionDetails(
        value=default_value,
        reason=Reason.ERROR,
        error_code=ErrorCode.PROVIDER_NOT_READY,
        error_message="no shiprail config yet: the default until the first one arrives",
    )


def _mismatch(flag_key: str, default_value: _T, kind: str) -> FlagResolutionDetails[_T]:
    """The default, flagged TYPE_MISMATCH: shiprail answers only string and boolean flags."""
    return FlagResolutionDetails(
        value=default_value,
        reason=Reason.ERROR,
        error_code=ErrorCode.TYPE_MISMATCH,
        error_message=f"shiprail flag {flag_key!r} is a string or boolean (the variant), not {kind}",
    )
