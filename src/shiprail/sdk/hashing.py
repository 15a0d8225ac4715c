"""The cohort hash: which of the FLAG_BUCKETS buckets a key falls into, and the per-config evaluator.

A key is served the canary when ``bucket(salt, key) < weight × 100`` (docs/flags.md, "Evaluation").
Because the bucket depends only on the salt and the key, a cohort is sticky (the same key, the same
answer) and monotonic (raising the weight only adds buckets). This module imports only the stdlib
and ``shiprail.defaults``: it is on the SDK's hot path and in every app that embeds the SDK.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Final, Literal, TypeAlias

from shiprail.defaults import FLAG_BUCKETS

Variant: TypeAlias = Literal["stable", "canary"]

STABLE: Final = "stable"
CANARY: Final = "canary"

# blake2b with an 8-byte digest: fast, stable across platforms and Python versions (unlike hash()),
# and 64 bits reduced modulo 10 000 leaves a bias far below anything a rollout could notice.
# Keys are UTF-8; "surrogatepass" changes nothing for valid text and keeps a lone surrogate (from
# json.loads of "\\ud800" in a request) from raising in variant(): it gets a bucket like any key.
_DIGEST_SIZE: Final = 8
# Bound once: a module-global load is cheaper than the attribute lookup on int on every call.
_from_bytes: Final = int.from_bytes


def key_text(key: object) -> str:
    """``key`` as it is hashed: a str as it is, an int as its decimal digits (``42`` as ``"42"``,
    as another language's SDK given the user id's text would hash it); TypeError for anything else.

    Checked at every weight: a key of the wrong type must fail in development at weight 0, not
    only once a rollout starts hashing keys.
    """
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):  # True is no user id
        return str(key)
    raise TypeError(f"a shiprail key must be a str or an int (a user id), not {type(key).__name__}")


def bucket(salt: str, key: str | int) -> int:
    """The bucket (0 to FLAG_BUCKETS - 1) ``key`` falls into under ``salt``.

    This is the reference definition; ``Evaluator`` computes the same value faster.
    """
    key = key_text(key)
    digest = hashlib.blake2b(f"{salt}:{key}".encode("utf-8", "surrogatepass"), digest_size=_DIGEST_SIZE).digest()
    return int.from_bytes(digest, "big") % FLAG_BUCKETS


def threshold(weight: float) -> int:
    """The number of buckets (0 to FLAG_BUCKETS) a weight in percent serves the canary.

    ``bucket < weight × 100`` holds for an integer bucket exactly when ``bucket < ceil(weight × 100)``,
    so comparing with this integer gives the spec's answer without a float comparison per call.
    """
    if weight <= 0:
        return 0
    if weight >= 100:
        return FLAG_BUCKETS
    # weight × 100 literally, as the spec writes it (not weight × FLAG_BUCKETS / 100, which can round
    # differently in the last bit and move a key across the boundary).
    return min(FLAG_BUCKETS, math.ceil(weight * 100))


class Evaluator:
    """Decides stable or canary for one (salt, weight) pair, with the ``salt:`` prefix hashed once.

    Build one per config; ``variant`` then costs one hash-state copy and one short update per call.
    Instances are never mutated after construction, so threads may share them without locks.
    """

    # prefix and split are public to the SDK client, whose variant() inlines this class's variant().
    __slots__ = ("prefix", "salt", "split", "threshold", "weight")

    def __init__(self, salt: str, weight: float) -> None:
        self.salt: Final = salt
        self.weight: Final = float(weight)
        self.threshold: Final = threshold(self.weight)
        # Keyless requests compare random() × 100 with this; infinity makes weight 100 exact even if
        # random() × 100 rounds up to 100.0.
        self.split: Final = math.inf if self.weight >= 100 else self.weight
        # The blake2b state after absorbing "salt:"; copy() clones it in C, far cheaper than
        # rehashing the prefix on every call.
        # As bucket() does: a salt with a lone surrogate (JSON allows "\ud800") must hash, not raise.
        self.prefix: Final = hashlib.blake2b(f"{salt}:".encode("utf-8", "surrogatepass"), digest_size=_DIGEST_SIZE)

    def bucket(self, key: str | int) -> int:
        """The same value as ``bucket(self.salt, key)``."""
        state = self.prefix.copy()
        state.update(key_text(key).encode("utf-8", "surrogatepass"))
        return int.from_bytes(state.digest(), "big") % FLAG_BUCKETS

    def variant(self, key: str | int | None = None) -> Variant:
        """``"canary"`` when the key's bucket is below the threshold; keyless: at random, by weight."""
        if key is None:
            return CANARY if random.random() * 100 < self.split else STABLE
        if key.__class__ is not str:
            key = key_text(key)
        limit = self.threshold
        if 0 < limit < FLAG_BUCKETS:
            state = self.prefix.copy()
            state.update(key.encode("utf-8", "surrogatepass"))
            return CANARY if _from_bytes(state.digest(), "big") % FLAG_BUCKETS < limit else STABLE
        return CANARY if limit else STABLE

    def __repr__(self) -> str:
        return f"Evaluator(salt={self.salt!r}, weight={self.weight!r})"
