"""Who may do what: approvals, QA sign-offs, overrides.

Pure functions over the policy's roles; they raise ``PermissionDenied`` or ``OverrideRefused``
(``NotFound`` for a name that is nobody's) with the sentence the user sees.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from shiprail.domain.engine import ReleaseState
from shiprail.errors import BadInput, NotFound, OverrideRefused, PermissionDenied


def require_person(name: str, known: Iterable[str]) -> None:
    """``name`` must be a person in the policy: a name nobody has is bad input (exit 2), as an unknown release id is."""
    if name not in set(known):
        raise NotFound(
            f"{name!r} is not a person in shiprail.yaml; add them under people, or act as someone "
            "who is with --as NAME or SHIPRAIL_USER"
        )


def require_role(name: str, roles: set[str], allowed: Sequence[str], doing: str, owner: str | None = None) -> None:
    """``name`` must hold one of ``allowed`` to do ``doing``; ``owner``: who may do it without a role."""
    if not roles.intersection(allowed):
        held = ", ".join(sorted(roles)) or "no role"
        or_owner = f" (or to be its owner, {owner})" if owner is not None else ""
        raise PermissionDenied(
            f"{name} may not {doing}: that needs the role {' or '.join(allowed)} in shiprail.yaml{or_owner}, "
            f"and {name} has {held}"
        )


def require_not_owner(name: str, owner: str, doing: str, former: Collection[str] = ()) -> None:
    """The release owner may not check their own work; nor may a former owner (``former``).

    A plan's ``owner:`` can change while the release is planned (``release update``): without
    ``former``, an owner could name a colleague and then approve or override their own release.
    """
    if name == owner:
        raise PermissionDenied(f"{name} owns this release and may not {doing}; ask someone else")
    if name in former:
        raise PermissionDenied(
            f"{name} owned this release (its plan now names {owner}) and may not {doing}; ask someone else"
        )


# Actors that are not people: the controller and other parts of shiprail acting on their own.
SYSTEM_ACTOR_PREFIX = "shiprail:"
# What made someone an author of a release, in the words of a refusal: ``authors`` finds them.
CREATED = "created this release"
CHANGED = "changed what this release runs (release update)"


def authors(events: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, str]:
    """Who authored the release, from its ``release.created`` and ``plan.updated`` events as (kind, actor,
    payload), oldest first: each person with what they did (``CREATED``, ``CHANGED``), the first thing said.

    As GitLab's "prevent approval by author" and "prevent approvals by users who add commits": whoever
    created the release, or replaced its plan with one that runs otherwise (its resolved hash changed),
    reviews their own work if they approve it. An update that changed nothing the release runs makes
    nobody an author. Actors that are not people (``SYSTEM_ACTOR_PREFIX``) author nothing.
    """
    out: dict[str, str] = {}
    for kind, actor, payload in events:
        if actor.startswith(SYSTEM_ACTOR_PREFIX):
            continue
        if kind == "release.created":
            out.setdefault(actor, CREATED)
        elif kind == "plan.updated" and _changed_what_it_runs(payload):
            out.setdefault(actor, CHANGED)
    return out


def _changed_what_it_runs(payload: Mapping[str, Any]) -> bool:
    """Whether a ``plan.updated`` changed what the release runs: its resolved hash; one recorded before
    events stated it (migration 0010) states the plan's hashes only, which then say."""
    if "resolved_hash" in payload:
        return bool(payload.get("old_resolved_hash") != payload["resolved_hash"])
    return bool(payload.get("old_plan_hash") != payload.get("plan_hash"))


def require_not_author(name: str, authors: Mapping[str, str], doing: str) -> None:
    """``name`` may not ``doing`` a release they authored (``authors``, from ``authors``)."""
    if name in authors:
        raise PermissionDenied(f"{name} {authors[name]} and may not {doing}; ask someone else")


def written_chars(reason_min_chars: int) -> int:
    """The fewest characters an override reason or a post-mortem summary may have.

    At least one whatever the policy says: ``reason_min_chars: 0`` let an override pass a gate with
    a blank reason, and a post-mortem close with a blank summary; every override is written down.
    """
    return max(reason_min_chars, 1)


def written_length(text: str) -> int:
    """How many characters of ``text`` can be read: spaces around it and invisible characters not counted.

    Zero-width spaces, joiners and control characters (Unicode categories Cf and Cc) are not
    whitespace to ``str.strip``: twenty of them passed for a 15-character override reason, and
    the audit trail kept a reason nobody can read. Nor are the letters and marks drawn as nothing
    (a Hangul filler, a variation selector: ``_BLANK_RANGES``).
    """
    return len(visible(text).strip())


def visible(text: str) -> str:
    """``text`` without the characters nobody sees: Cf and Cc, and those drawn as nothing."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cc") and not drawn_blank(c))


# Characters drawn as nothing that are neither Cf nor Cc (Unicode's default-ignorable letters and
# marks: fillers, the grapheme joiner, variation selectors), and the blank braille pattern.
_BLANK_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)


def drawn_blank(ch: str) -> bool:
    """Whether ``ch`` is drawn as nothing though neither Cf nor Cc (see ``_BLANK_RANGES``)."""
    code = ord(ch)
    return any(low <= code <= high for low, high in _BLANK_RANGES)


def characters(n: int) -> str:
    """``n`` characters, in words: "1 character", "15 characters"."""
    return "1 character" if n == 1 else f"{n} characters"


def check_override(
    *,
    who: str,
    roles: set[str],
    owner: str,
    reason: str,
    former_owners: Collection[str] = (),
    override_roles: Sequence[str],
    reason_min_chars: int,
    open_postmortems: Sequence[tuple[int, str]],
    failed_gates: Sequence[str],
    asked_gates: Sequence[str],
) -> None:
    """Whether ``who`` may pass ``asked_gates`` of a release; raise with the reason if not."""
    require_role(who, roles, override_roles, "override a gate")
    require_not_owner(who, owner, "override its gates", former_owners)
    least = written_chars(reason_min_chars)
    if written_length(reason) < least:
        raise BadInput(
            f"--reason must explain the override in at least {characters(least)}; "
            "it goes into the audit trail and opens a post-mortem"
        )
    if open_postmortems:
        pm_id, release_id = open_postmortems[0]
        raise OverrideRefused(
            f"this service has an open post-mortem from an earlier override (post-mortem #{pm_id} on {release_id}); "
            f"close it with `shiprail release postmortem {release_id} --done --summary ...` before another override"
        )
    if not failed_gates:
        raise OverrideRefused("no gate has failed, so there is nothing to override")
    not_failed = [g for g in asked_gates if g not in failed_gates]
    if not_failed:
        raise OverrideRefused(f"gate {not_failed[0]!r} has not failed; the failed gates are {', '.join(failed_gates)}")
    left = [g for g in failed_gates if g not in asked_gates]
    if left:
        raise OverrideRefused(
            f"gate {left[0]!r} failed too; name every failed gate with --gate ({', '.join(failed_gates)}), "
            "or leave --gate out to pass them all"
        )


def check_seen(release_id: str, seen: ReleaseState, now: ReleaseState, change: str) -> None:
    """Refuse an override when the release is no longer in ``seen``, the state the person looked at.

    An override passes what fails in the release's state when it is recorded: had the release moved
    since the person saw the refusal (a promotion by someone else or the controller, a refusal at
    the next step), it would pass gates they never saw. ``change``: what moved it last, in words.
    """
    if seen.describe() == now.describe():
        return
    raise OverrideRefused(
        f"release {release_id} is {now.describe()} now, not {seen.describe()} as when you looked: {change}; "
        f"nothing was overridden. Look again (`shiprail release show {release_id}`) and override what fails there"
    )
