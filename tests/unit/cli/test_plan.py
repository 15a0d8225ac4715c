"""The summary line of ``plan validate`` and ``plan show``: how many triggers a contract has."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from shiprail.cli.plan import triggers_count
from shiprail.schema.plan import RollbackContract


def contract(triggers: int, dry_runs: int) -> RollbackContract:
    return cast(
        RollbackContract, SimpleNamespace(triggers=[object()] * triggers, dry_runs=lambda: [object()] * dry_runs)
    )


def test_one_trigger_is_one_trigger() -> None:
    # A contract with one trigger was summed up as "1 triggers".
    assert triggers_count(contract(1, 0)) == "1 trigger"
    assert triggers_count(contract(3, 0)) == "3 triggers"
    assert triggers_count(contract(2, 1)) == "2 triggers, 1 dry run"
    assert triggers_count(contract(4, 2)) == "4 triggers, 2 dry runs"
