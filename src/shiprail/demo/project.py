"""The demo's project: a policy with second-long bakes, the ``shop`` service on the flag router, two plans."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SERVICE = "shop"
STABLE = "1.0.0"
GOOD = "1.1.0"
BAD = "1.2.0"
# Demo durations, in seconds: each canary weight bakes BAKE, Verify lasts VERIFY, analysis every 1 s.
BAKE = 3
VERIFY = 3
WINDOW = 5
# The environment variable holding the demo webhook's signing secret.
WEBHOOK_SECRET_ENV = "SHIPRAIL_DEMO_WEBHOOK_SECRET"


def policy(webhook_url: str) -> dict[str, Any]:
    """``shiprail init``'s policy with demo timings: every weight may bake BAKE seconds, Verify VERIFY."""
    template = resources.files("shiprail").joinpath("templates/project/shiprail.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(template)
    weights = doc["rollout"]["weights"]
    doc["rollout"]["min_bake"] = {risk: {w: f"{BAKE}s" for w in weights[:-1]} for risk in ("low", "medium", "high")}
    doc["rollout"]["analysis_interval"] = "1s"
    doc["verify"] = {"window": f"{VERIFY}s"}
    doc["channels"] = {"demo-webhook": {"type": "webhook", "url": webhook_url, "secret_env": WEBHOOK_SECRET_ENV}}
    return doc


def service() -> dict[str, Any]:
    """``services/shop.yaml``: split in the app by the SDK, measured from what the SDK pushes."""
    return {
        "name": SERVICE,
        "description": "The demo's sample shop: both code paths in one deployment, split by the shiprail SDK.",
        "router": {"type": "flag"},
        "provider": {"type": "push"},
        "metrics": {
            "error_rate": {
                "kind": "error_rate",
                "description": "Share of checkouts that failed, as the SDK recorded them.",
                "counter": "sdk_requests_total",
                "errors": "sdk_errors_total",
            },
            "latency_p99": {
                "kind": "latency",
                "unit": "s",
                "description": "99th percentile checkout latency, from the SDK's histogram.",
                "histogram": "sdk_latency_seconds",
                "quantile": 0.99,
            },
        },
    }


def plan(version: str, baseline: str, summary: str) -> dict[str, Any]:
    """A release plan: 1 → 10 → 50 → 100 %, BAKE seconds each, the contract below, Verify VERIFY seconds."""
    window = f"{WINDOW}s"
    return {
        "service": SERVICE,
        "version": version,
        "baseline": baseline,
        "owner": "alice",
        "scope": {
            "summary": summary,
            "user_facing": True,
            "changes": [summary],
            "tags": ["checkout"],
        },
        "rollback_contract": {
            "triggers": [
                # The sequential judge: the canary's errors against the baseline's, every analysis since
                # the rollout began, rolled back at the first look where the evidence reaches 1/alpha.
                {"name": "error-regression", "metric": "error_rate", "regression": {"alpha": 0.01}},
                {"name": "errors", "metric": "error_rate", "above": 0.02, "window": window, "min_samples": 3},
                # Absolute rather than `above_baseline: 2`: at 1 % a handful of canary requests make a p99,
                # and one slow scheduler tick on a busy machine would double it.
                {"name": "slow", "metric": "latency_p99", "above": 0.15, "window": window, "min_samples": 3},
                {"name": "complaints", "signal": "customer_complaint", "above": 3, "window": "1m"},
            ],
            "on_no_data": "pause",
            "revert": {"max_duration": "10s"},
        },
        "communication": [
            {
                "audience": "engineering",
                "notify": ["demo-webhook"],
                "on": ["started", "verifying", "rolled_back", "completed"],
            }
        ],
        "rollout": {
            "steps": [{"weight": w, "bake": f"{BAKE}s"} for w in (1, 10, 50)] + [{"weight": 100}],
            "analysis_interval": "1s",
        },
        "verify": {"window": f"{VERIFY}s", "on_call": "bob", "probes": []},
    }


def write(root: Path, webhook_url: str) -> dict[str, Path]:
    """Write the project into ``root`` (notifications to ``webhook_url``); return the plans by version."""
    files: dict[Path, tuple[str, dict[str, Any]]] = {
        root / "shiprail.yaml": (
            "shiprail policy for the demo: shiprail init's, with second-long bakes",
            policy(webhook_url),
        ),
        root / "services" / f"{SERVICE}.yaml": ("The demo's sample shop", service()),
    }
    plans = {
        GOOD: root / "releases" / f"{SERVICE}-{GOOD}.yaml",
        BAD: root / "releases" / f"{SERVICE}-{BAD}.yaml",
    }
    files[plans[GOOD]] = ("A good change", plan(GOOD, STABLE, "Faster cart totals"))
    files[plans[BAD]] = ("A bad change: its new code path is slow and fails", plan(BAD, GOOD, "New payment retry loop"))
    for path, (header, doc) in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=200)
        path.write_text(f"# {header}\n{text}", encoding="utf-8")
    return plans
