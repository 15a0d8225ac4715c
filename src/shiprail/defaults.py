"""Every default shiprail uses, in one place.

Policy files override these; nothing else in the code base spells a default number.
"""

from __future__ import annotations

from typing import Final

# --- project layout -------------------------------------------------------------------------
POLICY_FILE: Final = "shiprail.yaml"
SERVICES_DIR: Final = "services"
RELEASES_DIR: Final = "releases"
STATE_DIR: Final = ".shiprail"
SQLITE_FILE: Final = "shiprail.db"
DATABASE_URL_ENV: Final = "SHIPRAIL_DATABASE_URL"
USER_ENV: Final = "SHIPRAIL_USER"
AUDIT_KEY_ENV: Final = "SHIPRAIL_AUDIT_KEY"

# --- risk -----------------------------------------------------------------------------------
RISK_LEVELS: Final = ("low", "medium", "high")
DEFAULT_RISK: Final = "medium"
HIGH_RISK_TAGS: Final = ("auth", "payments", "data-migration")
LOW_RISK_TAGS: Final = ("docs",)

# Gates each risk level needs before and during Stage.
APPROVALS_BY_RISK: Final = {"low": 1, "medium": 1, "high": 2}
QA_CHECKLIST_BY_RISK: Final = {"low": False, "medium": False, "high": True}
LOAD_TEST_BY_RISK: Final = {"low": False, "medium": False, "high": True}

# --- rollout --------------------------------------------------------------------------------
ROLLOUT_WEIGHTS: Final = (1, 10, 50, 100)
# Minimum bake per weight (seconds) by risk. Low risk may bake shorter, never skip a weight.
MIN_BAKE_SECONDS: Final = {
    "low": {1: 5 * 60, 10: 30 * 60, 50: 60 * 60},
    "medium": {1: 30 * 60, 10: 2 * 3600, 50: 4 * 3600},
    "high": {1: 30 * 60, 10: 2 * 3600, 50: 4 * 3600},
}
ANALYSIS_INTERVAL_SECONDS: Final = 60

# --- contract -------------------------------------------------------------------------------
# What every rollback contract must cover: metric kinds or signal names.
CONTRACT_MUST_COVER: Final = ("error_rate", "latency", "customer_complaint")

# --- verify ---------------------------------------------------------------------------------
VERIFY_WINDOW_SECONDS: Final = 24 * 3600

# --- overrides ------------------------------------------------------------------------------
OVERRIDE_ROLES: Final = ("executive",)
OVERRIDE_REASON_MIN_CHARS: Final = 15

# --- controller -----------------------------------------------------------------------------
# How often the controller looks for new work and manual actions when no release is due sooner.
CONTROLLER_POLL_SECONDS: Final = 1.0
# A controller's claim on a release lasts this long unless renewed; another may then take over.
LEASE_SECONDS: Final = 15.0
# Router calls per attempt to apply a weight, and the first backoff between them (doubling, capped).
ROUTER_ATTEMPTS: Final = 4
ROUTER_BACKOFF_SECONDS: Final = 0.25
ROUTER_BACKOFF_MAX_SECONDS: Final = 5.0
# A weight read back within this many percentage points of the one set counts as applied.
WEIGHT_TOLERANCE: Final = 0.01
# Inconclusive analyses in a row before the contract's on_no_data applies.
NO_DATA_LIMIT: Final = 3
# The longest one Verify probe may take before it counts as failed.
PROBE_TIMEOUT_SECONDS: Final = 10.0
