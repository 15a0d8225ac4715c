"""Run a release's stage checks (its test commands, its load test) and record each as gate evidence.

Each result is recorded through ``Releases.record_check`` as soon as its check finishes, so a
long load test that is interrupted keeps the test results before it. The ``tests`` and
``load_test`` gates of ``release start`` then read the latest record of each check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import partial
from pathlib import Path

from shiprail import defaults
from shiprail.checks.load_test import KIND as LOAD_KIND
from shiprail.checks.load_test import NAME as LOAD_NAME
from shiprail.checks.load_test import run_load_test
from shiprail.checks.tests import KIND as TESTS_KIND
from shiprail.checks.tests import CheckResult, run_test
from shiprail.domain import rules
from shiprail.domain.states import Status
from shiprail.errors import BadInput, IllegalTransition
from shiprail.releases import SYSTEM_ACTOR_PREFIX, Releases


class Only(StrEnum):
    """Which stage checks to run."""

    TESTS = "tests"
    LOAD_TEST = "load_test"
    ALL = "all"


def artifacts_dir(root: Path, release_id: str) -> Path:
    """Where the checks of a release keep the files they write (Locust's CSV stats)."""
    return root / defaults.STATE_DIR / defaults.CHECKS_DIR / release_id


OnStart = Callable[[str, str, str], None]
"""Told ``(kind, name, what)`` as each check starts, e.g. to show progress."""


def run_stage_checks(
    releases: Releases,
    release_id: str,
    *,
    root: Path,
    actor: str,
    only: Only = Only.ALL,
    on_start: OnStart | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Run the stage checks of a release in staging, record each result, and return them in order.

    ``root`` is the project root that relative paths of the plan (``cwd``, ``locustfile``,
    ``stats_csv``) are resolved against. A release not in staging raises ``IllegalTransition``
    before anything runs (the records could not be kept); ``only`` naming a kind of check the
    plan does not have raises ``BadInput``. Checks that fail are results, not errors.
    """
    view = releases.get(release_id)
    if view.status != Status.STAGING.value:
        # record_check refuses too; saying so first spares a test suite and a load test whose
        # results could not be kept.
        planned = view.status == Status.PLANNED.value
        first = f": stage it first (`shiprail release stage {release_id}`)" if planned else ""
        raise IllegalTransition(f"release {release_id} is {view.state}; checks run in staging{first}")
    if not actor.startswith(SYSTEM_ACTOR_PREFIX):
        rules.require_person(actor, releases.policy.people)
    plan = view.resolved
    want_tests = only in (Only.TESTS, Only.ALL)
    want_load = only in (Only.LOAD_TEST, Only.ALL)
    if only is Only.TESTS and not plan.tests:
        raise BadInput(f"release {release_id} has no test commands in its plan (stage.tests)")
    if only is Only.LOAD_TEST and plan.load_test is None:
        raise BadInput(f"release {release_id} has no load test in its plan (stage.load_test)")

    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        releases.record_check(
            release_id,
            kind=result.kind,
            name=result.name,
            passed=result.passed,
            summary=result.summary,
            evidence=result.evidence,
            actor=actor,
        )
        results.append(result)

    if want_tests:
        for test in plan.tests:
            if on_start is not None:
                on_start(TESTS_KIND, test.name, test.command)
            record(_guarded(TESTS_KIND, test.name, partial(run_test, test, root, environ)))
    if want_load and plan.load_test is not None:
        load = plan.load_test
        if on_start is not None:
            what = f"locust -f {load.locustfile} for {load.duration}s" if load.locustfile else str(load.command)
            on_start(LOAD_KIND, LOAD_NAME, what)
        artifacts = artifacts_dir(root, release_id)
        record(_guarded(LOAD_KIND, LOAD_NAME, partial(run_load_test, load, root, artifacts, environ)))
    return results


def _guarded(kind: str, name: str, run: Callable[[], CheckResult]) -> CheckResult:
    """``run()``, or a failed result saying why when the files around the check could not be handled.

    The runners judge what the command did; the files they prepare and read first (the
    artifacts directory, an old report to remove) can still fail on the machine: a file where
    the directory goes, a full disk. That check then failed, and is recorded as such, rather
    than the whole ``release check`` stopping with the checks after it unrun and unrecorded.
    """
    try:
        return run()
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return CheckResult(kind, name, False, f"shiprail could not run it: {where}{exc.strerror or exc}")
