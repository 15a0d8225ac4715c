"""docs/flags.md's SDK example, run as written against a real ``shiprail serve``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shiprail.clock import WallClock
from shiprail.serve import SdkService, create_app
from shiprail.store import flags
from shiprail.store.db import Store
from tests.support.serving import serving

DOC = Path(__file__).resolve().parents[3] / "docs" / "flags.md"
KEY = "sdk-key-checkout"


def example(section: str) -> str:
    """The first Python block after the heading ``section`` of docs/flags.md."""
    text = DOC.read_text(encoding="utf-8")
    after = text[text.index(f"\n{section}\n") :]
    found = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_sdk_example_handles_its_first_request_with_a_version(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As written, the example asked version() right after creating the client, before its first
    # fetch had come back: the first requests were handled with version None, and their outcomes
    # dropped.
    flags.publish(
        store,
        service="checkout",
        release="checkout-2.4.0",
        stable="2.3.1",
        canary="2.4.0",
        weight=0,
        salt="checkout-2.4.0",
        at=datetime.now(UTC),
    )
    monkeypatch.setenv("SHIPRAIL_SDK_KEY", KEY)
    handled: list[str | None] = []

    def handle(request: object, version: str | None) -> tuple[bool, float]:
        handled.append(version)
        return True, 0.012

    app = create_app(store, WallClock(), {"checkout": SdkService("checkout", "SHIPRAIL_SDK_KEY", KEY)})
    with serving(app) as url:
        code = example("## Using the SDK").replace("http://shiprail.internal:8700", url)
        scope: dict[str, Any] = {"user_id": "user-7", "request": object(), "handle": handle, "STABLE": "2.3.1"}
        exec(compile(code, str(DOC), "exec"), scope)
    assert handled == ["2.3.1"]
    assert scope["flags"].dropped == 0
