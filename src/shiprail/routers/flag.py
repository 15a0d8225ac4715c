"""Flag router: an in-app percentage rollout served by shiprail to its SDKs.

Setting a weight publishes the service's rollout config (versions, weight, salt, a new revision)
in the store; ``shiprail serve`` hands it to SDKs by long-poll, and each SDK acknowledges the
revision it applies with its next request. ``set_weight`` returns once every SDK in contact has
acknowledged, or after ``FLAG_ACK_WAIT_SECONDS`` with the weight reported as unconfirmed
(``confirmation``): the weight is published either way, and an SDK that is out of contact picks
it up when it reconnects. ``current_weight`` reads back what is published.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from shiprail import defaults
from shiprail.clock import Clock
from shiprail.routers.base import RouterError
from shiprail.schema.base import StrictModel
from shiprail.store import flags
from shiprail.store.db import Store


class FlagRouterConfig(StrictModel):
    """Apps hash a stable key with ``salt`` into a sticky cohort; ``sdk_key_env`` holds their key."""

    type: Literal["flag"] = Field(description="`flag`.")
    salt: str | None = Field(
        None,
        max_length=200,
        description=(
            "Mixed into the hash of each stable key. Unset: the release id, so every release draws a fresh "
            "cohort; set it to keep the same users first in line across releases."
        ),
    )
    sdk_key_env: str = Field(
        defaults.SDK_KEY_ENV,
        description="The environment variable, where `shiprail serve` runs, holding the key this service's SDKs send.",
    )


# Called with (service, revision) after every publish: serve wakes its long-polls at once instead of
# at its next look in the store. Module-level because the controller and serve share a process.
_listeners: list[Callable[[str, int], None]] = []


def on_publish(listener: Callable[[str, int], None]) -> Callable[[], None]:
    """Call ``listener(service, revision)`` after each publish in this process; returns the unsubscribe."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


class FlagRouter:
    """Publishes one release's weight for its service's SDKs and confirms it from their acknowledgements."""

    def __init__(
        self,
        config: FlagRouterConfig,
        *,
        store: Store,
        clock: Clock,
        service: str,
        release: str,
        version: str,
        baseline: str,
        ack_wait_s: float = defaults.FLAG_ACK_WAIT_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.service = service
        self.release = release
        self.version = version
        self.baseline = baseline
        self.salt = config.salt or release
        self.ack_wait_s = ack_wait_s
        # What the last set_weight could say about the SDKs: read by the controller into its events.
        self.confirmation: dict[str, Any] | None = None

    # Publishing is one transaction of the controller's own: it is committed, or rolled back with
    # the connection of a controller killed mid-call.
    calls_end_with_caller = True

    @property
    def call_timeout_s(self) -> float:
        """The longest one call may take: publishing, then waiting for the SDKs' acknowledgements."""
        return self.ack_wait_s + defaults.ROUTER_CALL_TIMEOUT_SECONDS

    def set_weight(self, weight: float) -> None:
        if not self._first_publish_allowed(weight):
            self.confirmation = None  # nothing published, no SDK to hear of it
            return
        try:
            published = flags.publish(
                self.store,
                service=self.service,
                release=self.release,
                stable=self.baseline,
                canary=self.version,
                weight=weight,
                salt=self.salt,
                at=self.clock.now(),
            )
        except SQLAlchemyError as exc:
            raise RouterError(f"cannot publish the flag config of {self.service}: {exc}") from exc
        for listener in list(_listeners):
            listener(self.service, published.revision)
        self.confirmation = self._await_acks(published.revision)

    def _first_publish_allowed(self, weight: float) -> bool:
        """Whether to publish ``weight`` (False: nothing to publish); RouterError when it would move users back.

        The config holds what the service's last release left: every user on one version (its
        canary at 100 %, its baseline at 0 %). A release's first publish names its own baseline as
        ``stable``; a baseline other than that version would move everyone to it, an older version
        most likely (a plan written before the last release completed). And a weight of 0 from a
        release that published nothing yet has no user to take back from its canary: publishing
        it would only put its baseline in place of what everyone runs.
        """
        try:
            with self.store.transaction() as s:
                published = flags.read(s, self.service)
        except SQLAlchemyError as exc:
            raise RouterError(f"cannot read the flag config of {self.service}: {exc}") from exc
        if published.release is None or published.release == self.release:
            return True
        if weight <= 0:
            return False
        live = published.canary if published.weight >= 100 else published.stable if published.weight <= 0 else None
        if live is None or live == self.baseline:
            return True
        raise RouterError(
            f"the flag config of {self.service} serves {live} to everyone (release {published.release} left it at "
            f"{published.weight:g}%), not this release's baseline {self.baseline}: publishing it would move every "
            f"user from {live} to {self.baseline}; roll it back (`shiprail release rollback {self.release}`) and "
            f"release {self.version} with a plan whose baseline is {live}"
        )

    def current_weight(self) -> float:
        try:
            with self.store.transaction() as s:
                published = flags.read(s, self.service)
        except SQLAlchemyError as exc:
            raise RouterError(f"cannot read the flag config of {self.service}: {exc}") from exc
        # Another release's config says nothing about this one's canary: its weight is 0.
        if published.canary != self.version or published.release != self.release:
            return 0.0
        return published.weight

    def _await_acks(self, revision: int) -> dict[str, Any]:
        """Wait until every SDK in contact applies ``revision`` (bounded); say how far they got."""
        deadline = self.clock.now() + timedelta(seconds=self.ack_wait_s)
        while True:
            now = self.clock.now()
            since = now - timedelta(seconds=defaults.FLAG_CONTACT_SECONDS)
            with self.store.transaction() as s:
                seen = flags.contacts(s, self.service, since)
            lagging = [c.client for c in seen if c.revision < revision]
            if not lagging or now >= deadline:
                break
            self.clock.sleep_until(min(deadline, now + timedelta(seconds=defaults.FLAG_ACK_POLL_SECONDS)))
        acked = len(seen) - len(lagging)
        if not seen:
            summary = f"published revision {revision}; no SDK in contact to acknowledge it"
        elif lagging:
            summary = (
                f"revision {revision} UNCONFIRMED: {acked} of {len(seen)} SDKs acknowledged it within "
                f"{self.ack_wait_s:g}s ({', '.join(lagging[:5])}{'…' if len(lagging) > 5 else ''} lag)"
            )
        else:
            summary = f"revision {revision} acknowledged by all {len(seen)} SDKs in contact"
        return {
            "revision": revision,
            "sdks": len(seen),
            "acknowledged": acked,
            "lagging": lagging,
            "confirmed": not lagging,
            "summary": summary,
        }
