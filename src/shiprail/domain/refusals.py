"""What refused a gate: the identity of a refusal, which an override covers and nothing else.

Pure. An override is an executive's answer to a refusal they saw: a gate **and** what made it fail
then. A gate fails for different things over time under one name: a freeze named ``maintenance``
ends and one named ``black-friday`` begins, a handover puts another person who may not be on call
in Verify's way, another test fails. An override of the first must not pass the second, which its
author never saw: the release holds again until someone overrides that one.

What identifies a refusal is read from its gate's evidence, as data (``REFUSED_BY``): for each
gate, the evidence key naming what refuses it and the fields that tell one such thing from
another. Two refusals of a gate are the same when they name the same things (in any order); an
override also covers a part of the refusal its author saw (one of two freezes ended since, an item
signed off since), never anything more or else. A gate not in the table (``approvals``, ``bake``,
``verify_window``, ``load_test``, ``judgment``: each refuses for one thing) is told by its name
alone, as is a refusal whose evidence lacks the key (recorded by an earlier shiprail): both match
as overrides always matched, by the gate's name.

A refusal's **reference** (``freeze@1f2e3d4c``) names it on the command line: the refusal's
message suggests the override with it, ``release show`` prints it beside each refusal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shiprail.domain.states import Gate


@dataclass(frozen=True)
class RefusedBy:
    """Where a gate's evidence names what refuses it.

    ``key``: the evidence key; its value is a list of the things refusing (``many``), or the one
    thing. ``fields``: what identifies a thing that is a mapping (a freeze window: its name and its
    end, so that a freeze moved to end later is another refusal); empty: the thing itself (a name).
    """

    key: str
    many: bool = True
    fields: tuple[str, ...] = ()


REFUSED_BY: Mapping[Gate, RefusedBy] = {
    # The windows on: each by its name and its end (the occurrence of a recurring one).
    Gate.FREEZE: RefusedBy("freezes", fields=("name", "until")),
    # The person on call.
    Gate.ON_CALL: RefusedBy("on_call", many=False),
    # The test commands that did not pass, the QA items not signed off.
    Gate.TESTS: RefusedBy("failing"),
    Gate.QA: RefusedBy("unsigned"),
    # The contract's triggers (or probes) that did not pass in the analysis judged.
    Gate.ANALYSIS: RefusedBy("failing"),
    Gate.PROBES: RefusedBy("failing"),
}

# How many hex digits of a refusal's digest its reference carries: enough to tell apart the few
# refusals one gate of one release makes in one state.
REF_DIGITS = 8
REF_MARK = "@"


def refused_by(gate: Gate | str, evidence: Mapping[str, Any]) -> list[Any] | None:
    """What refused ``gate`` according to its ``evidence``, in a canonical order; None when the
    gate is told by its name alone (not in ``REFUSED_BY``, or evidence recorded without the key)."""
    spec = REFUSED_BY.get(Gate(gate)) if gate in {g.value for g in Gate} else None
    if spec is None or spec.key not in evidence:
        return None
    value = evidence[spec.key]
    things = list(value) if spec.many and isinstance(value, list) else [value]
    if spec.fields:
        things = [{f: t.get(f) for f in spec.fields} if isinstance(t, Mapping) else t for t in things]
    return sorted(things, key=lambda t: json.dumps(t, sort_keys=True))


def reference(gate: Gate | str, culprits: Sequence[Any] | None) -> str:
    """The refusal's reference: ``gate@digest`` of what refused it (the bare gate when told by name)."""
    name = gate.value if isinstance(gate, Gate) else gate
    if culprits is None:
        return name
    digest = hashlib.sha256(json.dumps([name, list(culprits)], sort_keys=True).encode()).hexdigest()
    return f"{name}{REF_MARK}{digest[:REF_DIGITS]}"


def parse_gate(text: str) -> tuple[str, str | None]:
    """``--gate`` as given: ``freeze`` -> ("freeze", None), ``freeze@1f2e3d4c`` -> ("freeze", "freeze@1f2e3d4c").

    A reference's digest is read in any case (``freeze@1F2E3D4C`` is ``freeze@1f2e3d4c``): people copy
    it from terminals and chat, where it may have been retyped or upper-cased. The gate's name is
    not: gate names are exact everywhere else (``--gate Freeze`` is not a gate either).
    """
    name, mark, digest = text.partition(REF_MARK)
    return name, f"{name}{REF_MARK}{digest.lower()}" if mark else None


def reference_problem(name: str, ref: str, release_id: str) -> str | None:
    """What is wrong with ``ref``, a reference given for gate ``name`` of ``release_id`` (``parse_gate``), or None.

    No refusal of a gate told by its name alone has a reference, and every other one's is the gate,
    ``@`` and ``REF_DIGITS`` hex digits: anything else was mistyped or cut short when copied, and
    would otherwise be answered as a refusal that changed since its author saw it.
    """
    if name not in {g.value for g in REFUSED_BY}:
        return f"gate {name} refuses for one thing and its refusals carry no reference; name it as --gate {name}"
    digest = ref.partition(REF_MARK)[2]
    if len(digest) != REF_DIGITS or any(c not in "0123456789abcdef" for c in digest):
        return (
            f"a refusal's reference is its gate, {REF_MARK} and {REF_DIGITS} hexadecimal digits, as the refusal "
            f"names it ({name}{REF_MARK}1f2e3d4c); copy it from the refusal or from `shiprail release show "
            f"{release_id}`"
        )
    return None


def within(now: Sequence[Any], then: Sequence[Any]) -> bool:
    """Whether what refuses a gate ``now`` is what refused it ``then``, or a part of it: of the
    windows, tests or QA items an override was shown, some no longer refuse (a freeze ended, an
    item was signed off) and the rest refused then too. Nothing refusing (no analysis counts yet)
    is part only of nothing: it is not a failing analysis's refusal."""
    if list(now) == list(then):
        return True
    return bool(now) and all(thing in then for thing in now)


def covers(
    gate: Gate | str, now: Sequence[Any] | None, named: str | None, seen: Sequence[Sequence[Any] | None]
) -> bool:
    """Whether an override covers ``gate``'s refusal now (``now``: what refuses it).

    ``named``: the refusal the override names (a reference): it covers that one, and what is left
    of a refusal of the action in the release's state it names (``seen``: what refused it each
    time, newest first; ``within``). Without one, it covers what refused the action in the state:
    every refusal told apart must have been for what refuses it now, or more, else which of them its
    author saw is unknown. Nothing refused (a gate named with ``--gate`` that nobody tried), or
    refusals told by name alone (recorded by an earlier shiprail), cover it by name, as before.
    """
    if named is not None:
        if named == reference(gate, now):
            return True
        return now is not None and any(s is not None and reference(gate, s) == named and within(now, s) for s in seen)
    known = [s for s in seen if s is not None]
    return all(within(now, s) for s in known) if now is not None else True
