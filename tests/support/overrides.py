"""Passing a failed gate as a person does: try the action, see a gate refuse it, then override."""

from __future__ import annotations

from collections.abc import Sequence

from shiprail.domain.engine import Outcome
from shiprail.domain.states import FORWARD, Status
from shiprail.errors import GateFailed
from shiprail.releases import Releases


def refused(svc: Releases, rid: str, by: str = "alice") -> None:
    """``by`` tries the release's next forward action, and a gate refuses it (else the test is wrong)."""
    action = FORWARD[Status(svc.get(rid).status)]
    try:
        svc.act(rid, action, by)
    except GateFailed:
        return
    raise AssertionError(f"{action.value} of {rid} went through: there was no failed gate to override")


def override(svc: Releases, rid: str, who: str, reason: str, gates: Sequence[str] = (), by: str = "alice") -> Outcome:
    """``svc.override`` once ``by`` was refused the forward action: an override without gates named
    passes only gates that failed since the release entered its state."""
    refused(svc, rid, by)
    return svc.override(rid, who, reason, gates)
