"""Fixtures for end-to-end tests against real processes (see ``tests/e2e/stack.py``).

- ``stack_factory(router="nginx"|"haproxy", *, ready=True) -> Stack``: a fresh stack for one test;
- ``module_stack_factory``: the same, shared by the tests of a module (started once per call,
  stopped when the module is done);
- ``load_factory(url, **options) -> Load``: a started load generator, stopped after the test.

Every process is stopped by its PID at teardown, also when the test (or starting the stack) fails.
The binaries are checked with ``require_binary``: a missing one skips, except on CI where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.e2e.stack import Load, RouterKind, Stack, start_stack


class StackFactory(Protocol):
    def __call__(self, router: RouterKind = "nginx", *, ready: bool = True) -> Stack: ...


class LoadFactory(Protocol):
    def __call__(self, url: str, **options: Any) -> Load: ...


class _Stacks:
    """Starts stacks in numbered directories under ``base`` and stops them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[Stack] = []

    def __call__(self, router: RouterKind = "nginx", *, ready: bool = True) -> Stack:
        stack = start_stack(self.base / f"stack{len(self.started)}-{router}", router, ready=ready)
        self.started.append(stack)
        return stack

    def stop_all(self) -> None:
        problems: list[BaseException] = []
        for stack in reversed(self.started):
            try:
                stack.stop()
            except Exception as exc:  # stop the other stacks regardless
                problems.append(exc)
        if problems:
            raise problems[0]


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[StackFactory]:
    """``stack_factory("nginx")`` / ``stack_factory("haproxy")``: a fresh stack, stopped after the test."""
    stacks = _Stacks(tmp_path)
    try:
        yield stacks
    finally:
        stacks.stop_all()


@pytest.fixture(scope="module")
def module_stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """Like ``stack_factory``, for stacks shared by a module's tests; stopped after the module."""
    stacks = _Stacks(tmp_path_factory.mktemp("e2e"))
    try:
        yield stacks
    finally:
        stacks.stop_all()


@pytest.fixture
def load_factory() -> Iterator[LoadFactory]:
    """``load_factory(stack.url, rate=40)``: a started ``Load``, stopped after the test."""
    loads: list[Load] = []

    def start(url: str, **options: Any) -> Load:
        load = Load(url, **options)
        loads.append(load)
        return load.start()

    try:
        yield start
    finally:
        for load in loads:
            load.stop()
