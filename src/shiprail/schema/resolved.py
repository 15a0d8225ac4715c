"""A release plan resolved against its policy and service: the effective rules of one release.

This is what the store keeps and the engine reads; it is computed once, when the release is
created, so later policy edits never change a release in flight.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from shiprail.schema.plan import (
    Communication,
    LoadTest,
    Probe,
    ReleasePlan,
    RollbackContract,
    Rollout,
    Step,
    TestCommand,
)
from shiprail.schema.policy import RISK_ORDER, Policy
from shiprail.schema.service import Service


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept; the form that gets hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolved_hash(resolved_json: str) -> str:
    """The hash of a resolved release as stored (``ResolvedRelease.model_dump_json()``): what approvals approve.

    It covers everything the release runs with: the plan's hash, its contract, the steps and bakes,
    the stage checks, Verify, and the service file (``target``) and policy as they resolved. It is
    taken of the canonical form of the stored JSON, so the same stored release always has the same
    hash, whichever shiprail reads it.
    """
    return sha256_hex(canonical_json(json.loads(resolved_json)))


def tag_key(tag: str) -> str:
    """A tag as risk compares it: case, surrounding spaces and the separator (``-``, ``_``, space) do not count.

    ``Payments``, `` payments`` and ``data_migration`` are the tags ``payments`` and
    ``data-migration`` of shiprail.yaml: spelled otherwise they made a payments release medium
    risk, with fewer approvals and no QA checklist or load test.
    """
    return re.sub(r"[\s_-]+", "-", tag.strip()).casefold()


def computed_risk(tags: list[str], policy: Policy) -> tuple[str, str]:
    """The risk the tags imply, and why."""
    high_tags = {tag_key(t) for t in policy.risk.high_tags}
    low_tags = {tag_key(t) for t in policy.risk.low_tags}
    high = [t.strip() for t in tags if tag_key(t) in high_tags]
    if high:
        return "high", f"tag {', '.join(high)} is high-risk in shiprail.yaml"
    if tags and all(tag_key(t) in low_tags for t in tags):
        return "low", f"every tag ({', '.join(tags)}) is low-risk in shiprail.yaml"
    return policy.risk.default, f"the default risk in shiprail.yaml is {policy.risk.default}"


def effective_risk(plan: ReleasePlan, policy: Policy) -> tuple[str, str]:
    """The plan's risk: what the tags imply, raised (never lowered) by the plan's own ``risk``."""
    risk, why = computed_risk(plan.scope.tags if plan.scope else [], policy)
    if plan.risk and RISK_ORDER[plan.risk] > RISK_ORDER[risk]:
        return plan.risk, "raised by the plan"
    return risk, why


def default_steps(policy: Policy, risk: str) -> list[Step]:
    """The policy's weights, each baking its minimum for ``risk``."""
    bakes = policy.min_bake_for(risk)
    return [Step(weight=w, bake=bakes.get(w)) for w in policy.rollout.weights]


class ResolvedRelease(BaseModel):
    """Everything the engine and the controller need to run one release."""

    model_config = ConfigDict(frozen=True)

    service: str
    version: str
    baseline: str
    owner: str
    summary: str
    tags: list[str]
    risk: str
    risk_reason: str
    approvals_required: int
    qa_checklist: list[str]
    qa_required: bool
    tests: list[TestCommand]
    load_test: LoadTest | None
    load_test_required: bool
    steps: list[Step]
    analysis_interval: int
    verify_window: int
    on_call: str
    probes: list[Probe]
    contract: RollbackContract
    communication: list[Communication]
    plan_hash: str
    contract_hash: str
    # The service file as it was when the release was created: the router, provider and metrics
    # the controller drives this release with, whatever later edits of the file say.
    target: Service


def analysis_interval(rollout: Rollout | None, policy: Policy) -> int:
    """How often a release's contract is evaluated: its rollout's interval, else the policy's."""
    return (rollout.analysis_interval if rollout else None) or policy.rollout.analysis_interval


def resolve(plan: ReleasePlan, service: Service, policy: Policy, plan_hash: str) -> ResolvedRelease:
    """Combine a plan that passed every guardrail with its service and policy."""
    assert plan.service and plan.version and plan.baseline and plan.owner
    assert plan.scope and plan.rollback_contract and plan.verify
    assert plan.communication
    risk, why = effective_risk(plan, policy)
    gates = policy.gates_for(risk)
    stage = plan.stage or service.defaults.stage
    rollout = plan.rollout or service.defaults.rollout
    min_bake = policy.min_bake_for(risk)
    steps = (
        [
            Step(weight=s.weight, bake=s.bake if s.bake is not None else min_bake.get(int(s.weight)), promote=s.promote)
            for s in rollout.steps
        ]
        if rollout and rollout.steps
        else default_steps(policy, risk)
    )
    verify_defaults = service.defaults.verify
    on_call = plan.verify.on_call or (verify_defaults.on_call if verify_defaults else None)
    assert on_call is not None
    probes = plan.verify.probes or (verify_defaults.probes if verify_defaults else [])
    contract_json = canonical_json(plan.rollback_contract.model_dump(mode="json"))
    return ResolvedRelease(
        service=plan.service,
        version=plan.version,
        baseline=plan.baseline,
        owner=plan.owner,
        summary=plan.scope.summary or "",
        tags=list(plan.scope.tags),
        risk=risk,
        risk_reason=why,
        approvals_required=max(gates.approvals, (stage.approvals if stage else None) or 0),
        qa_checklist=list(stage.qa_checklist) if stage else [],
        qa_required=gates.qa_checklist or bool(stage and stage.qa_checklist),
        tests=list(stage.tests) if stage else [],
        load_test=stage.load_test if stage else None,
        load_test_required=gates.load_test or bool(stage and stage.load_test),
        steps=steps,
        analysis_interval=analysis_interval(rollout, policy),
        verify_window=plan.verify.window
        or (verify_defaults.window if verify_defaults else None)
        or policy.verify.window,
        on_call=on_call,
        probes=list(probes),
        contract=plan.rollback_contract,
        communication=list(plan.communication),
        plan_hash=plan_hash,
        contract_hash=sha256_hex(contract_json),
        target=service,
    )
