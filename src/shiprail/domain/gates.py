"""Pure gate evaluators: facts in, a ``GateResult`` with its evidence out.

Gates whose facts come from plugins (test runs, load tests, analysis, probes, router
confirmation) are judged from the recorded results those plugins leave; a gate with nothing
recorded fails, because shiprail never moves forward on missing evidence.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from shiprail.domain.engine import GateResult
from shiprail.domain.freezes import FreezeHit
from shiprail.domain.states import Gate
from shiprail.durations import format_duration


def approvals(
    approvers: Sequence[str],
    owner: str,
    required: int,
    former: Collection[str] = (),
    lapsed: Collection[str] = (),
    approve_roles: Sequence[str] = (),
    authors: Collection[str] = (),
) -> GateResult:
    """Enough distinct approvers, the owner not counted, nor anyone the plan named its owner before (``former``).

    An approval is of one plan text: an approver later named the owner, whose plan is then put
    back as it was, would otherwise count on a release they owned. Nor does an approver count who
    may no longer approve (``lapsed``: lost every role of ``approve_roles``, or left shiprail.yaml,
    since approving): the policy as it is when the release enters Stage decides, as it decides who
    may be on call. Nor does an author of the release (``authors``: who created it, or changed what
    it runs), who approved it as it was before their change and sees that change put back.
    """
    distinct = sorted(set(approvers) - {owner} - set(former) - set(lapsed) - set(authors))
    evidence: dict[str, object] = {"approvers": distinct, "required": required}
    gone = sorted((set(approvers) & set(lapsed)) - {owner} - set(former))
    if gone:
        evidence["lapsed"] = gone
    wrote = sorted((set(approvers) & set(authors)) - {owner} - set(former) - set(gone))
    if wrote:
        evidence["authors"] = wrote
    if len(distinct) >= required:
        return GateResult(Gate.APPROVALS, True, f"{len(distinct)} of {required} approvals", evidence)
    why = f"{len(distinct)} of {required} required approvals given"
    barred = sorted(set(approvers) & set(former))
    if barred:
        why += f" ({', '.join(barred)} owned this release: their approval does not count)"
    if gone:
        hold = "holds" if len(gone) == 1 else "hold"
        why += (
            f" ({', '.join(gone)} no longer {hold} the role {' or '.join(approve_roles)} in shiprail.yaml: "
            "their approval does not count)"
        )
    if wrote:
        why += f" ({', '.join(wrote)} created or changed this release: their approval does not count)"
    return GateResult(Gate.APPROVALS, False, why, evidence)


def qa(
    checklist: Sequence[str],
    signed: Mapping[str, str],
    required: bool,
    owners: Collection[str] = (),
    lapsed: Collection[str] = (),
    qa_role: str = "qa",
) -> GateResult:
    """Every checklist item signed off (``signed``: item -> who) by someone who never owned the release.

    A sign-off outlives ``release update`` (it belongs to the item's text): a qa who signed off
    and was then named the owner would otherwise pass the QA of their own release. Nor does a
    sign-off count by someone who no longer holds ``qa_role`` (``lapsed``: lost it, or left
    shiprail.yaml, since): the policy as it is when the rollout starts decides.
    """
    missing = [item for item in checklist if item not in signed or signed[item] in owners or signed[item] in lapsed]
    # "unsigned": what refuses the gate (``shiprail.domain.refusals``).
    evidence = {"items": list(checklist), "signed": dict(signed), "required": required, "unsigned": missing}
    if required and not checklist:
        return GateResult(Gate.QA, False, "a QA checklist is required but the plan has none", evidence)
    if missing:
        why = f"{len(missing)} of {len(checklist)} QA items not signed off: {', '.join(map(repr, missing))}"
        owned = [item for item in missing if item in signed and signed[item] in owners]
        why += _signed_by(owned, signed, len(missing), ("owns the release", "own the release"))
        gone = [item for item in missing if item in signed and item not in owned]
        role = f"the role {qa_role} in shiprail.yaml"
        why += _signed_by(gone, signed, len(missing), (f"no longer holds {role}", f"no longer hold {role}"))
        return GateResult(Gate.QA, False, why, evidence)
    what = f"all {len(checklist)} QA items signed off" if checklist else "no QA checklist for this release"
    return GateResult(Gate.QA, True, what, evidence)


def _signed_by(items: Sequence[str], signed: Mapping[str, str], missing: int, why: tuple[str, str]) -> str:
    """Why ``items``, signed off, do not count: `` (signed off by quinn, who owns the release: …)``.

    ``why`` is the reason said of one signer and of several; ``missing`` counts every item not signed off.
    """
    if not items:
        return ""
    names = sorted({signed[item] for item in items})
    if missing == 1:
        return f" (signed off by {names[0]}, who {why[0]}: another qa must sign it off)"
    which = f"all {len(items)}" if len(items) == missing else str(len(items))
    them = "it" if len(items) == 1 else "them"
    return (
        f" ({which} signed off by {', '.join(names)}, who {why[0] if len(names) == 1 else why[1]}: another qa must "
        f"sign {them} off)"
    )


@dataclass(frozen=True)
class CheckRecord:
    """The latest recorded run of a stage check (a test command or a load test)."""

    name: str
    passed: bool
    summary: str


def tests(expected: Sequence[str], records: Mapping[str, CheckRecord]) -> GateResult:
    """Every test command of the plan ran and passed."""
    evidence = {
        "expected": list(expected),
        "runs": {n: {"passed": r.passed, "summary": r.summary} for n, r in records.items()},
        # What refuses the gate (``shiprail.domain.refusals``): every test that has not run or failed.
        "failing": [n for n in expected if n not in records or not records[n].passed],
    }
    for name in expected:
        record = records.get(name)
        if record is None:
            return GateResult(Gate.TESTS, False, f"test {name!r} has not run", evidence)
        if not record.passed:
            return GateResult(Gate.TESTS, False, f"test {name!r} failed: {record.summary}", evidence)
    count = len(expected)
    what = f"{count} test command{'' if count == 1 else 's'} passed" if count else "no test commands for this release"
    return GateResult(Gate.TESTS, True, what, evidence)


def load_test(required: bool, planned: bool, record: CheckRecord | None) -> GateResult:
    """The load test ran within its thresholds (when the plan has one or policy requires one)."""
    evidence = {"required": required, "planned": planned, "run": None if record is None else record.summary}
    if required and not planned:
        return GateResult(Gate.LOAD_TEST, False, "a load test is required but the plan has none", evidence)
    if not planned:
        return GateResult(Gate.LOAD_TEST, True, "no load test for this release", evidence)
    if record is None:
        return GateResult(Gate.LOAD_TEST, False, "the load test has not run", evidence)
    if not record.passed:
        return GateResult(Gate.LOAD_TEST, False, f"the load test failed: {record.summary}", evidence)
    return GateResult(Gate.LOAD_TEST, True, f"the load test passed: {record.summary}", evidence)


def verify_window(watched_s: float, needed: int, started: datetime | None) -> GateResult:
    """The validation window is over: ``needed`` seconds **watched** since Verify began.

    Watched as a bake is: analysis intervals with every trigger passing, recorded by the
    controller; hours nobody watched, paused or without data do not count (a window of wall-clock
    time would pass on a controller that was down for all of it).
    """
    evidence = {
        "started": None if started is None else started.isoformat(),
        "watched_s": round(watched_s, 3),
        "needed_s": needed,
    }
    if started is None:
        return GateResult(Gate.VERIFY_WINDOW, False, "the validation window has not started", evidence)
    if watched_s >= needed:
        why = f"the validation window of {format_duration(needed)} was watched with every trigger passing"
        return GateResult(Gate.VERIFY_WINDOW, True, why, evidence)
    left = format_duration(max(1, math.ceil(needed - watched_s)))
    why = f"the validation window has {left} of its {format_duration(needed)} left to watch"
    return GateResult(Gate.VERIFY_WINDOW, False, why, evidence)


def baked(baked_s: float, needed: int, weight: float) -> GateResult:
    """The step has baked ``needed`` seconds: time under watch with every trigger passing."""
    evidence = {"baked_s": round(baked_s, 3), "needed_s": needed, "weight": weight}
    if needed == 0:  # not "baked 0s", whatever it baked: it was asked for none
        return GateResult(Gate.BAKE, True, f"{weight:g}% has no bake to wait for", evidence)
    if baked_s >= needed:
        return GateResult(
            Gate.BAKE, True, f"{weight:g}% baked {format_duration(needed)} with every trigger passing", evidence
        )
    left = format_duration(max(1, math.ceil(needed - baked_s)))
    return GateResult(Gate.BAKE, False, f"{weight:g}% has {left} of its {format_duration(needed)} bake left", evidence)


def judgment(by_person: bool, actor: str, step: int, weight: float, release_id: str) -> GateResult:
    """A step with ``promote: manual`` (``step``: its number from 1) is promoted by a person, not the controller."""
    evidence = {"by": actor, "step": step, "weight": weight}
    if by_person:
        return GateResult(
            Gate.JUDGMENT, True, f"{actor} promoted step {step} ({weight:g}%), which waits for a person", evidence
        )
    return GateResult(
        Gate.JUDGMENT,
        False,
        f"step {step} ({weight:g}%) waits for a person to promote it (promote: manual): "
        f"`shiprail release promote {release_id}`",
        evidence,
    )


def recorded(gate: Gate, verdict: tuple[bool, str] | None, nothing: str) -> GateResult:
    """A gate judged elsewhere (analysis, probes, revert): its last recorded verdict, if any."""
    if verdict is None:
        return GateResult(gate, False, nothing)
    passed, reason = verdict
    return GateResult(gate, passed, reason)


def on_call(name: str, roles: Collection[str] | None, role: str, candidates: Sequence[str]) -> GateResult:
    """The release's on-call person may answer for Verify: a person of shiprail.yaml (``roles`` is
    None when not) holding ``role``. ``candidates``: those who hold it, named in the reason."""
    evidence = {"on_call": name, "roles": None if roles is None else sorted(roles), "needs": role}
    if roles is not None and role in roles:
        return GateResult(Gate.ON_CALL, True, f"{name} is on call (role {role} in shiprail.yaml)", evidence)
    who = f"someone who has it ({', '.join(candidates)})" if candidates else f"someone given the role {role}"
    who += " with `shiprail release handover`"
    if roles is None:
        why = (
            f"{name}, on call for Verify, is not a person in shiprail.yaml; add {name} under people with the role "
            f"{role}, or hand over to {who}"
        )
    else:
        held = ", ".join(sorted(roles)) or "no role"
        why = (
            f"{name}, on call for Verify, needs the role {role} in shiprail.yaml and has {held}; give {name} "
            f"the role, or hand over to {who}"
        )
    return GateResult(Gate.ON_CALL, False, why, evidence)


def freeze(hits: Sequence[FreezeHit], moves_traffic: bool = True) -> GateResult:
    """No deployment freeze is on (``hits``: the windows on now, the one that ends last first).

    A move that sends no more traffic to the canary (a promotion from 100% into Verify) passes.
    """
    evidence = {"freezes": [{"name": h.name, "until": h.until.isoformat(), "timezone": h.timezone} for h in hits]}
    if not hits:
        return GateResult(Gate.FREEZE, True, "no deployment freeze is on", evidence)
    if not moves_traffic:
        return GateResult(
            Gate.FREEZE, True, f"this moves no traffic, so {hits[0].describe()} does not hold it", evidence
        )
    return GateResult(Gate.FREEZE, False, hits[0].describe(), evidence)
