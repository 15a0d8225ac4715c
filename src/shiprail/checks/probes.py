"""Verify's probes: HTTP checks of key user flows, judged like contract triggers.

A probe passes when the response arrives with the expected status, within ``max_latency`` (when
set), and holds ``expect_json.equals`` at ``expect_json.path`` (when set). Anything else — a
timeout, a refused connection, another status — fails it. During Verify the controller runs each
probe at the analysis where its ``interval`` has passed since its last run, and a failing probe
fails the analysis like a trigger (so it rolls the release back); the ``probes`` gate of
``complete`` passes when the latest analysis held a passing result for every probe.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from shiprail.domain.contract import TriggerResult
from shiprail.providers.common import one_line
from shiprail.providers.http import http_problem, request_within, shown_url
from shiprail.providers.web import MISSING, dig
from shiprail.schema.plan import Probe


def json_equals(found: Any, expected: str | float | bool) -> bool:
    """Whether a JSON value is the expected one, as JSON sees it: ``1`` is ``1.0``, but ``true`` is not
    ``1`` and ``false`` is not ``0`` (Python's ``True == 1`` would pass a flow answering ``{"ok": 1}``
    for ``equals: true``, or ``{"errors": false}`` for ``equals: 0``)."""
    if isinstance(found, bool) or isinstance(expected, bool):
        return isinstance(found, bool) and isinstance(expected, bool) and found == expected
    return bool(found == expected)


def _as_written(expected: str | float | bool) -> str:
    """The expected value as the plan wrote it: ``0``, not the ``0.0`` the schema's float made of it."""
    if isinstance(expected, float) and not isinstance(expected, bool) and expected.is_integer():
        return json.dumps(int(expected))
    return json.dumps(expected)


def run_probe(probe: Probe, client: httpx.Client, timeout_s: float) -> TriggerResult:
    """Run ``probe`` once and judge the response; the whole answer must arrive within ``timeout_s``."""
    name = probe.result_name
    started = time.perf_counter()
    try:
        # One deadline for connecting, the headers and the body: httpx's own bounds each read only,
        # so a flow that trickles its answer would pass, or hold Verify's analysis for ever.
        answer = request_within(client, probe.method, probe.url, headers=probe.headers, timeout_s=timeout_s)
    except httpx.HTTPError as exc:
        why = http_problem(exc, f"{probe.method} {shown_url(probe.url)}", timeout_s)
        return TriggerResult(name, "fail", one_line(why, 300))
    took = time.perf_counter() - started
    status, body = answer.status, answer.text
    if status != probe.expect_status:
        why = f"HTTP {status}, expected {probe.expect_status}"
        location = answer.headers.get("location")
        if 300 <= status < 400 and location:
            # Probes do not follow redirects (a flow that lands on the login page is not the flow);
            # saying where it pointed tells a moved URL or an http→https redirect from a failure.
            why += f" (a redirect to {shown_url(location)}, which probes do not follow)"
        return TriggerResult(name, "fail", why, float(status))
    if probe.max_latency is not None and took > probe.max_latency:
        return TriggerResult(
            name, "fail", f"answered in {took:.3f}s, slower than {probe.max_latency:g}s", took, probe.max_latency
        )
    if probe.expect_json is not None:
        try:
            doc = json.loads(body)
        except json.JSONDecodeError:
            return TriggerResult(name, "fail", "the response is not JSON")
        found = dig(doc, probe.expect_json.path)
        if found is MISSING:
            return TriggerResult(name, "fail", f"no {probe.expect_json.path!r} in the response")
        if probe.expect_json.equals is not None and not json_equals(found, probe.expect_json.equals):
            return TriggerResult(
                name,
                "fail",
                f"{probe.expect_json.path} is {json.dumps(found)}, expected {_as_written(probe.expect_json.equals)}",
            )
    return TriggerResult(name, "pass", f"HTTP {status} in {took:.3f}s", took, probe.max_latency)
