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
# How long a command waits for another process's write to SQLite to end before it fails.
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
# A write transaction waits for that lock in slices of this length, looking between them whether the
# process is going (Store.stop_lock_waits): SQLite's own wait cannot be interrupted.
SQLITE_LOCK_WAIT_SLICE_MS: Final = 200
DATABASE_URL_ENV: Final = "SHIPRAIL_DATABASE_URL"
# PostgreSQL connection settings shiprail gives libpq unless the URL sets them (?connect_timeout=…):
# a server that accepts the connection but never answers (a stuck server, a proxy whose backend is
# gone) must fail a command, or a controller's pass, instead of hanging it for good; the keepalives
# notice an idle connection whose peer vanished (a failover, a cut network) in about a minute.
# Keepalives are not sent while data is unacknowledged, so a query sent to a server whose host is
# gone (or that stopped reading) would wait out the kernel's retransmissions, ~15 minutes; libpq's
# tcp_user_timeout (Linux TCP_USER_TIMEOUT) ends such a connection once data sent has gone
# unacknowledged this long. A long query is not affected: the server acknowledges it at once.
PG_TCP_USER_TIMEOUT_MS: Final = 60_000
PG_CONNECT_ARGS: Final = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS,
}
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
# The most `overrides.reason_min_chars` may ask: a long paragraph. More makes every override (and
# every post-mortem summary, held to the same length) all but impossible to write, and past about
# 128 KiB no command line can pass --reason at all.
OVERRIDE_REASON_MIN_CHARS_MAX: Final = 1000

# --- deployment freezes ---------------------------------------------------------------------
# The zone a freeze window's times are read in when it names none (GitLab's deploy freezes' default).
FREEZE_TIMEZONE: Final = "UTC"

# --- audit anchors --------------------------------------------------------------------------
# How often the controller appends a checkpoint of the audit chain's head to the anchor log
# (shiprail.yaml's audit.anchors) at most, when the head moved; audit.anchor_every overrides it.
ANCHOR_EVERY_SECONDS: Final = 15 * 60
# After an anchor failed (a full disk, a chain that does not verify), the controller tries again
# after this long, or after anchor_every when that is shorter: each try verifies the whole chain.
ANCHOR_RETRY_SECONDS: Final = 60.0
# How long taking an anchor waits for the anchor log's lock, held by another writer (a controller
# verifying the chain, `audit anchor` from cron) or by anyone (`flock FILE ...`, a hung writer on a
# share), before it gives up for now: the controller's pass, which drives every release, never
# waits longer. Two writers at once hold it for one verification of the chain each.
ANCHOR_LOCK_WAIT_SECONDS: Final = 10.0

# --- controller -----------------------------------------------------------------------------
# How often the controller looks for new work and manual actions when no release is due sooner.
CONTROLLER_POLL_SECONDS: Final = 1.0
# `shiprail controller --metrics-port`: where it listens, and after how many polls without a
# finished pass (or one lease, when longer) /healthz says 503.
CONTROLLER_METRICS_HOST: Final = "127.0.0.1"
CONTROLLER_STALE_POLLS: Final = 3
# A controller's claim on a release lasts this long unless renewed; another may then take over.
LEASE_SECONDS: Final = 15.0
# While a router call runs, its controller renews the lease this often (a heartbeat), so a slow
# call never lets another controller take the release over and apply a weight underneath it.
LEASE_RENEW_SECONDS: Final = LEASE_SECONDS / 3
# The heartbeat stops this long after the call's own timeout (a router's ``call_timeout_s``):
# a call hung past both cannot hold the release for ever; the lease then runs out.
LEASE_CALL_MARGIN_SECONDS: Final = 10.0
# Leases are timed by the database's clock (PostgreSQL): read this often, carried forward on the
# host's monotonic clock in between.
LEASE_CLOCK_RESYNC_SECONDS: Final = 60.0
# A store outage is recorded as over once the store has answered every controller pass this long:
# a store whose connections keep being cut is one outage in the audit trail, not one per cut.
STORE_OUTAGE_SETTLE_SECONDS: Final = 60.0
# The command router's watchdog (coreutils `timeout`) kills a script this long after its own
# timeout, even when the controller that started it is gone; well inside the margin above, which
# is how long a lease's call mark outlasts the call.
COMMAND_WATCHDOG_GRACE_SECONDS: Final = 1
# The longest one call may take, for a router that does not say (its ``call_timeout_s``).
ROUTER_CALL_TIMEOUT_SECONDS: Final = 60.0
# The longest one metric query may take, for a provider that does not say (its ``call_timeout_s``).
# An analysis keeps its lease renewed too, up to two queries per trigger and one run per probe.
PROVIDER_CALL_TIMEOUT_SECONDS: Final = 30.0
# Router calls per attempt to apply a weight, and the first backoff between them (doubling, capped).
ROUTER_ATTEMPTS: Final = 4
ROUTER_BACKOFF_SECONDS: Final = 0.25
ROUTER_BACKOFF_MAX_SECONDS: Final = 5.0
# After a pass whose attempts all failed, the weight is tried again after this long, doubling with
# each failed pass in a row up to the maximum (a reconcile that raised backs off the same way).
# Each failed pass is one `router.failed` event, so an outage costs a few events an hour, not thousands.
ROUTER_RETRY_SECONDS: Final = 5.0
ROUTER_RETRY_MAX_SECONDS: Final = 300.0
# A rollback (weight 0) backs off to this at most: once the router heals, the revert follows soon.
ROLLBACK_RETRY_MAX_SECONDS: Final = 60.0
# A revert the router has not confirmed this long after the rollback was decided (or the contract's
# revert.max_duration, when shorter) is announced as stuck (`rollback.stuck`, notification revert_stuck);
# an executive may confirm it by hand (`release override --at rolling_back`) this long after a controller
# first asked the router for weight 0, not before.
REVERT_STUCK_SECONDS: Final = 120.0
# A weight read back within this many percentage points of the one set counts as applied.
WEIGHT_TOLERANCE: Final = 0.01
# Inconclusive analyses in a row before the contract's on_no_data applies.
NO_DATA_LIMIT: Final = 3
# The longest one Verify probe may take before it counts as failed.
PROBE_TIMEOUT_SECONDS: Final = 10.0
# How often a Verify probe runs when its plan gives no interval.
PROBE_INTERVAL_SECONDS: Final = 60

# How long past its --timeout `release start --wait` still waits for a look at the store to come
# back: a controller pass may legitimately run long (a router call), a stalled store never ends.
WAIT_STALL_GRACE_SECONDS: Final = 30.0

# --- flag router, shiprail serve, SDK -------------------------------------------------------
SERVE_HOST: Final = "127.0.0.1"
SERVE_PORT: Final = 8700
# The largest request body shiprail serve reads (an SDK's batch is a few kilobytes).
SERVE_MAX_BODY_BYTES: Final = 1 << 20
# Service names serve did not know, asked about with no key of its own, waiting to be looked up in
# the service files (off the requests' path, by one thread); more are dropped, and an SDK asks again.
SERVE_LOOKUPS_QUEUED: Final = 16
# `serve --shutdown-grace`: how long the requests under way at SIGTERM may take to finish before
# they are cut off (answered 503). Below Kubernetes' default terminationGracePeriodSeconds (30 s)
# and systemd's TimeoutStopSec (90 s), leaving serve time for its last writes (the controller's
# leases, the SDK contacts heard) before the supervisor's SIGKILL.
SERVE_SHUTDOWN_GRACE_SECONDS: Final = 20
# serve's exit code when a second Ctrl-C stopped it without waiting for its shutdown: 128 + SIGINT,
# as a shell reports a command that Ctrl-C ended (a graceful stop exits 0).
SERVE_FORCED_EXIT_CODE: Final = 130
# How long serve, exiting, waits for PostgreSQL to take the cancel of each statement still running
# for a request cut off at shutdown (Store.cancel_statements).
STORE_CANCEL_TIMEOUT_SECONDS: Final = 2.0
# The token that opens serve's status pages and release API to readers (Bearer, or a browser's
# Basic password); unset, they are off.
STATUS_TOKEN_ENV: Final = "SHIPRAIL_STATUS_TOKEN"
# How often a status page of releases still under way reloads itself in the browser.
STATUS_REFRESH_SECONDS: Final = 10
# The releases the status list shows: every one under way, and this many of the latest that ended.
STATUS_ENDED_SHOWN: Final = 50
# The most releases one `GET /api/v1/releases?limit=` may ask for (without `limit`: all of them).
STATUS_API_MAX_LIMIT: Final = 10_000
# Environment variable holding a flag service's SDK key (the service file may name another).
SDK_KEY_ENV: Final = "SHIPRAIL_SDK_KEY"
# Hash buckets a stable key falls into; weight w% serves buckets below w × 100 the canary.
FLAG_BUCKETS: Final = 10_000
# After publishing, the router waits at most this long for every SDK in contact to acknowledge.
FLAG_ACK_WAIT_SECONDS: Final = 5.0
# How often the router looks for acknowledgements while it waits.
FLAG_ACK_POLL_SECONDS: Final = 0.02
# An SDK seen within this long (a long-poll or a fetch) counts as in contact.
FLAG_CONTACT_SECONDS: Final = 60.0
# An SDK not heard from for this long is forgotten (its flag_clients row deleted): every process
# start is a new client id, and the router reads every row of a service while it waits for acks.
FLAG_CLIENT_KEEP_SECONDS: Final = 86_400.0
# How often serve looks in the store for configs another process published and flushes contacts.
FLAG_WATCH_SECONDS: Final = 0.05
# How often `shiprail serve --no-controller` checks that no newer shiprail migrated its store (with
# the controller, each of its passes checks).
SCHEMA_WATCH_SECONDS: Final = 5.0
# How long the flag hub's passes may all fail (other than an unreachable store) before /healthz says 503.
FLAG_HUB_FAILING_SECONDS: Final = 10.0
# The longest a config long-poll may be held (the SDK asks for SDK_POLL_WAIT_SECONDS).
FLAG_MAX_WAIT_SECONDS: Final = 60.0
SDK_POLL_WAIT_SECONDS: Final = 25.0
# After failed fetches in a row the SDK retries with capped exponential backoff and equal jitter:
# the n-th wait is drawn from the upper half of min(SDK_RETRY_MAX_SECONDS, SDK_RETRY_SECONDS * 2**(n-1)).
SDK_RETRY_SECONDS: Final = 0.5
SDK_RETRY_MAX_SECONDS: Final = 10.0
SDK_TIMEOUT_SECONDS: Final = 5.0
# The OpenFeature provider logs each flag key it does not serve once, for this many distinct keys:
# an app's flags are few, and a key built per request must not grow the set without bound.
SDK_UNKNOWN_FLAG_WARNINGS: Final = 100
# client.record() outcomes are posted in batches this often (and when the client closes).
SDK_FLUSH_SECONDS: Final = 1.0
# The longest Client.close() takes, whatever the client is doing (a long-poll held, a connect or a
# post hanging on a serve that is down or stuck): its last post of outcomes and its goodbye to serve
# share it, and a thread still stuck then (a connect) ends by itself within SDK_TIMEOUT_SECONDS.
# 2 s, not less: the last post to a distant serve over a new TLS connection (about four round
# trips) must fit, or every close drops the last second of outcomes; still a fifth of the 10.5 s
# a hung serve held an app's shutdown before.
SDK_CLOSE_SECONDS: Final = 2.0
# The most versions one pushed batch may hold: an SDK serves the stable and the canary version
# (a third while one release ends and the next begins). Without a bound one 1 MiB post of 20,000
# versions stored 40,000 rows.
PUSH_BATCH_MAX_VERSIONS: Final = 16
# The longest version string a pushed batch or signal may name (serve refuses longer ones).
MAX_VERSION_CHARS: Final = 120
# Latency histogram buckets (upper bounds in seconds), Prometheus' defaults, then +Inf.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Signal names the SDK's pushed outcomes are stored under.
SDK_REQUESTS_SIGNAL: Final = "sdk_requests_total"
SDK_ERRORS_SIGNAL: Final = "sdk_errors_total"
SDK_LATENCY_SIGNAL: Final = "sdk_latency_seconds"

# --- stage checks (tests, load test) --------------------------------------------------------
# Stage checks keep what they write (Locust's CSV stats) in STATE_DIR/CHECKS_DIR/<release id>/.
CHECKS_DIR: Final = "checks"
# The longest a stage test command may run when its plan gives no timeout.
TEST_TIMEOUT_SECONDS: Final = 600
# How long a load test runs when its plan gives no duration.
LOAD_TEST_DURATION_SECONDS: Final = 60
# The last bytes of a check's stdout and of its stderr kept as gate evidence.
CHECK_OUTPUT_TAIL_BYTES: Final = 8192
# After SIGTERM to a timed-out check's process group, how long before SIGKILL.
CHECK_KILL_GRACE_SECONDS: Final = 5.0
# A check's stdout and stderr together may fill this much of its temporary files; past it the
# command is killed and fails. `yes` writes ~250 MB/s: at the 10-minute default timeout an
# unbounded test would fill a disk before it timed out.
CHECK_OUTPUT_MAX_BYTES: Final = 64 * 1024 * 1024
# How often a running check's output size is looked at; output can overshoot the cap by what the
# command writes in this long.
CHECK_OUTPUT_POLL_SECONDS: Final = 0.1
# Failing test cases kept in the evidence, and named in the one-line summary.
CHECK_FAILURES_KEPT: Final = 50
CHECK_FAILURES_NAMED: Final = 3
# A failing case's message is cut to this many characters.
CHECK_MESSAGE_CHARS: Final = 500
# A load test may run this long beyond its duration (start-up, ramp-down) before it is killed.
LOAD_TEST_GRACE_SECONDS: Final = 60

# --- notifications --------------------------------------------------------------------------
# Attempts to deliver one notification to one channel before it counts as failed.
NOTIFY_ATTEMPTS: Final = 8
# The wait before the second attempt, doubling after each failure up to the maximum.
NOTIFY_BACKOFF_SECONDS: Final = 10.0
NOTIFY_BACKOFF_MAX_SECONDS: Final = 300.0
# A receiver that answers 429 or 503 with Retry-After (Slack does) is left alone that long, up to this.
NOTIFY_RETRY_AFTER_MAX_SECONDS: Final = 3600.0
# The longest one send may take, all of it (connecting, the request, the answer; an SMTP conversation).
NOTIFY_TIMEOUT_SECONDS: Final = 10.0
# How often the notifier looks for new audit events when no retry is due sooner.
NOTIFY_POLL_SECONDS: Final = 1.0
# A notifier claims a delivery for this long before sending it; others leave it alone meanwhile.
# Longer than any one send can take (NOTIFY_TIMEOUT_SECONDS).
NOTIFY_CLAIM_SECONDS: Final = 120.0
# Events older than this when the notifier reads them are not announced: news a day late is noise,
# and a notifier started on an old store does not replay its history.
NOTIFY_MAX_AGE_SECONDS: Final = 24 * 3600
# Audit events, or due deliveries, one notifier transaction handles at most.
NOTIFY_BATCH: Final = 200
# Webhook receivers should refuse a signed request whose timestamp is further than this from now.
NOTIFY_SIGNATURE_TOLERANCE_SECONDS: Final = 300
# Webhook request headers: the attempt's timestamp (always) and the signature (when signed).
NOTIFY_SIGNATURE_HEADER: Final = "X-Shiprail-Signature"
NOTIFY_TIMESTAMP_HEADER: Final = "X-Shiprail-Timestamp"
# `release start --wait` gives the notifier this long, once the release has ended, to deliver its last events.
NOTIFY_FINAL_SECONDS: Final = 5.0
# The range of min_ratio, as a plan's regression takes it: from 1 (any increase) to 10, half the
# top of the rate test's grid of ratios (1/20 … 20). Below 1 the test would roll back a canary
# that is no worse than the baseline; near 20 the grid leaves too few alternatives above it to
# gather evidence (at 19.9 one, and the test needs over 50,000 errors to fail a canary that fails
# every request), while up to 10 at least 28 grid points stand above it.
MIN_RATIO_RANGE: Final = (1.0, 10.0)
# The width the CLI lays its tables out in when it writes to no terminal (`shiprail release list | grep`,
# a CI log) and COLUMNS is not set: wider than any row, so each row is one line, as grep and awk read it.
PIPED_WIDTH: Final = 100_000
