"""How fast shiprail's SDK answers "stable or canary?" next to Unleash, LaunchDarkly and GrowthBook.

Every contender evaluates the same 10 % percentage rollout, locally and offline (no server, no
network, nothing sent), for the same user keys ``user-0`` … ``user-<n-1>``::

    .venv/bin/python -m bench.sdk [--evaluation] [--rounds 5] [--keys 100000] [--no-write]

Run it from the repository root. It prints a table and rewrites the SDK evaluation part of
``docs/benchmarks.md`` (between ``<!-- bench:sdk:evaluation:start -->`` and
``<!-- bench:sdk:evaluation:end -->``, inside the SDK section ``<!-- bench:sdk:start -->`` …
``<!-- bench:sdk:end -->``, which it creates when missing); ``--no-write`` leaves the page alone.
The rollback-propagation part of the same section belongs to the ``--propagation`` mode::

    .venv/bin/python -m bench.sdk --propagation [--trials 50] [--sdks 20] [--sdk-processes 2]
        [--modes embedded,scaled] [--no-write]

**Propagation.** How long a rollback takes from the flag router's decision to the last SDK serving
the new config (goal: p99 under 1 s), with real processes and HTTP on loopback: `shiprail serve`
(*embedded*: its app in a thread of the bench with the router beside it, as when the controller
runs inside serve; *scaled*: ``shiprail serve --no-controller`` in a process of its own, the router
in the bench as a separate controller), ``--sdks`` ``shiprail.sdk.Client`` instances (in
``--sdk-processes`` worker processes, ``--sdk-worker``; 0: threads of the bench), and a
``FlagRouter`` on the same SQLite store alternating weight 10 and 0. Per decision: t0 just before
``set_weight``, each SDK's ``time.perf_counter_ns()`` in its ``on_change`` (CLOCK_MONOTONIC, shared by
the processes), the last of them, and how long ``set_weight`` waited for the acknowledgements. It
rewrites ``<!-- bench:sdk:propagation:start -->`` … ``<!-- bench:sdk:propagation:end -->``.

**Contenders.** One setup each, done once before anything is timed:

- *shiprail*: ``Client.from_config({...weight 10, salt "shop-2.0.0"})`` (an offline client), then
  ``client.variant(key)``;
- *Unleash* (``UnleashClient``): a toggle with the ``flexibleRollout`` strategy (rollout 10,
  stickiness ``default``, groupId ``shop-2.0.0``) bootstrapped from a dict into a ``FileCache``;
  ``initialize_client(fetch_toggles=False)`` (no registration, no metrics, no polling), then
  ``client.is_enabled(name, {"userId": key})``;
- *LaunchDarkly* (``launchdarkly-server-sdk``): the ``Files`` data source holding a flag whose
  fallthrough is a 10/90 rollout over two variations, ``send_events=False``; then
  ``client.variation(key, Context.builder(user).build(), False)``;
- *GrowthBook* (``growthbook``): a feature whose rule forces ``true`` with ``coverage`` 0.1
  (GrowthBook's percentage rollout), evaluated two ways: one ``GrowthBook(attributes=...,
  features=...)`` per user, then ``is_on`` and ``destroy()`` (the SDK's documented usage in web
  frameworks: a new instance per request); and one shared instance whose attributes are swapped
  with ``set_attributes`` before ``is_on`` (cheaper, but not safe across threads).

**Correctness.** Before timing, every contender answers for every key once: its share of "on" /
canary must be within 1 point of 10 %, and the first 1,000 keys must answer the same on a second
pass (sticky). shiprail's answers are also compared with the formula of ``docs/flags.md``. A
contender that fails is reported as failing and not timed.

**Timing.** Rounds (``--rounds``): in each, every contender evaluates all keys once. The keys go
in batches of ``--batch`` consecutive keys, and the contenders are interleaved batch by batch:
every contender evaluates batch 1 (in an order that rotates from batch to batch), then batch 2,
and so on, so contenders compared on a batch ran a fraction of a second apart, under the same load
of this shared machine. Each batch is timed with ``time.perf_counter_ns`` and divided by its size:
a single call of the fastest contender is of the order of the timer's own cost. Garbage is
collected at the start of each round. Reported: evaluations/s (keys / a round's total, median over
rounds), median and p99 of the per-call time over all batches, and the time relative to shiprail's
(per batch, the same keys in the same round, then the median).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib.metadata
import json
import math
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from bench.page import docs_problem, machine, md_table, reflow, replace_block

if TYPE_CHECKING:
    from shiprail.sdk import Client
    from shiprail.store.db import Store

KEYS = 100_000
ROUNDS = 5
BATCH = 1000
STICKY_KEYS = 1000
"""Keys evaluated a second time to check that each contender's answer is sticky."""
WEIGHT = 10.0
"""The canary's share in percent."""
TOLERANCE_POINTS = 1.0
"""How far (in percentage points) a contender's observed share may be from ``WEIGHT``."""
SERVICE = "shop"
RELEASE = "shop-2.0.0"
SALT = RELEASE
FLAG = "shop-canary"
SHIPRAIL_CONFIG: dict[str, Any] = {
    "service": SERVICE,
    "revision": 1,
    "release": RELEASE,
    "stable": "1.0.0",
    "canary": "2.0.0",
    "weight": WEIGHT,
    "salt": SALT,
}
UNLEASH_FEATURES: dict[str, Any] = {
    "version": 1,
    "features": [
        {
            "name": FLAG,
            "enabled": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": f"{WEIGHT:g}", "stickiness": "default", "groupId": SALT},
                }
            ],
        }
    ],
}
LAUNCHDARKLY_FLAGS: dict[str, Any] = {
    "flags": {
        FLAG: {
            "key": FLAG,
            "version": 1,
            "on": True,
            "variations": [True, False],
            # LaunchDarkly weights are in thousandths of a percent: 10 % canary, 90 % stable.
            "fallthrough": {
                "rollout": {
                    "variations": [
                        {"variation": 0, "weight": round(WEIGHT * 1000)},
                        {"variation": 1, "weight": 100_000 - round(WEIGHT * 1000)},
                    ]
                }
            },
            "offVariation": 1,
            "salt": SALT,
            "targets": [],
            "rules": [],
            "prerequisites": [],
        }
    }
}
GROWTHBOOK_FEATURES: dict[str, Any] = {
    FLAG: {
        "defaultValue": False,
        "rules": [{"force": True, "coverage": WEIGHT / 100, "hashAttribute": "id", "seed": SALT, "hashVersion": 2}],
    }
}

MARK_START = "<!-- bench:sdk:start -->"
MARK_END = "<!-- bench:sdk:end -->"
EVALUATION_START = "<!-- bench:sdk:evaluation:start -->"
EVALUATION_END = "<!-- bench:sdk:evaluation:end -->"
PROPAGATION_START = "<!-- bench:sdk:propagation:start -->"
PROPAGATION_END = "<!-- bench:sdk:propagation:end -->"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

Runner = Callable[[Sequence[str]], None]
"""Evaluates the rollout for every key of a batch (answers discarded): what is timed."""
Check = Callable[[str], bool]
"""One key → is it in the canary ("on")? Used untimed, for correctness."""


@dataclass
class Setup:
    run: Runner
    check: Check
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Contender:
    name: str
    package: str
    """The distribution whose version is reported."""
    includes: str
    """What one measured call includes (for the page)."""
    setup: Callable[[Path], Setup]


# ---------------------------------------------------------------------------------- contenders


def setup_shiprail(workdir: Path) -> Setup:
    from shiprail.sdk import Client

    client = Client.from_config(dict(SHIPRAIL_CONFIG))
    variant = client.variant

    def run(keys: Sequence[str]) -> None:
        for key in keys:
            variant(key)

    def check(key: str) -> bool:
        return variant(key) == "canary"

    close = getattr(client, "close", None)
    return Setup(run, check, close if callable(close) else lambda: None)


def setup_unleash(workdir: Path) -> Setup:
    from UnleashClient import UnleashClient  # type: ignore[attr-defined]  # the documented import
    from UnleashClient.cache import FileCache

    cache = FileCache("shiprail-bench", directory=str(workdir / "unleash"))
    cache.bootstrap_from_dict(UNLEASH_FEATURES)
    client = UnleashClient(
        url="http://127.0.0.1:9/unused",  # never contacted: no registration, no metrics, no fetch
        app_name="shiprail-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
        refresh_interval=3600,  # the offline connector's reload from the cache: not during the run
    )
    client.initialize_client(fetch_toggles=False)
    is_enabled = client.is_enabled

    def run(keys: Sequence[str]) -> None:
        for key in keys:
            is_enabled(FLAG, {"userId": key})

    def check(key: str) -> bool:
        return bool(is_enabled(FLAG, {"userId": key}))

    return Setup(run, check, client.destroy)


def setup_launchdarkly(workdir: Path) -> Setup:
    from ldclient import Context
    from ldclient.client import LDClient
    from ldclient.config import Config
    from ldclient.integrations import Files

    path = workdir / "launchdarkly-flags.json"
    path.write_text(json.dumps(LAUNCHDARKLY_FLAGS), encoding="utf-8")
    config = Config(
        "sdk-key-unused",
        update_processor_class=Files.new_data_source(paths=[str(path)]),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = LDClient(config=config, start_wait=5)
    if not client.is_initialized():
        client.close()  # type: ignore[no-untyped-call]
        raise RuntimeError(f"the LaunchDarkly client did not load {path}")
    variation = client.variation
    builder = Context.builder

    def run(keys: Sequence[str]) -> None:
        for key in keys:
            variation(FLAG, builder(key).build(), False)

    def check(key: str) -> bool:
        return variation(FLAG, builder(key).build(), False) is True

    return Setup(run, check, client.close)


def setup_growthbook_per_request(workdir: Path) -> Setup:
    from growthbook import GrowthBook

    features = GROWTHBOOK_FEATURES

    def run(keys: Sequence[str]) -> None:
        for key in keys:
            gb = GrowthBook(attributes={"id": key}, features=features)
            gb.is_on(FLAG)
            gb.destroy()

    def check(key: str) -> bool:
        gb = GrowthBook(attributes={"id": key}, features=features)
        try:
            return gb.is_on(FLAG)
        finally:
            gb.destroy()

    return Setup(run, check)


def setup_growthbook_shared(workdir: Path) -> Setup:
    from growthbook import GrowthBook

    gb = GrowthBook(features=GROWTHBOOK_FEATURES)
    set_attributes = gb.set_attributes
    is_on = gb.is_on

    def run(keys: Sequence[str]) -> None:
        for key in keys:
            set_attributes({"id": key})
            is_on(FLAG)

    def check(key: str) -> bool:
        set_attributes({"id": key})
        return is_on(FLAG)

    return Setup(run, check, gb.destroy)


CONTENDERS: tuple[Contender, ...] = (
    Contender(
        "shiprail",
        "shiprail",
        "`client.variant(key)` on the client `Client.from_config(...)` returned: one read of its current "
        "config snapshot, then the blake2b bucket of `salt:key` (the `salt:` prefix hashed once per config, "
        "its state copied per call) compared with the weight's threshold.",
        setup_shiprail,
    ),
    Contender(
        "Unleash",
        "UnleashClient",
        '`client.is_enabled(name, {"userId": key})`: the SDK merges the caller\'s dict into a copy of its '
        "static context, adds `currentTime`, stringifies every field, and hands it to its Rust engine (Yggdrasil, "
        "through FFI with a JSON round trip) that evaluates `flexibleRollout` (murmur3 of `groupId:userId`, "
        "1 % steps) and counts the toggle for metrics (never sent: `disable_metrics`).",
        setup_unleash,
    ),
    Contender(
        "LaunchDarkly",
        "launchdarkly-server-sdk",
        "`client.variation(flag, Context.builder(key).build(), False)`: building the user's context (an app "
        "has to per request), the flag's lookup in the in-memory store, the rollout (SHA-1 of "
        "`flag.salt.key`) and the evaluation's event object (dropped: `send_events=False`).",
        setup_launchdarkly,
    ),
    Contender(
        "GrowthBook (per request)",
        "growthbook",
        '`GrowthBook(attributes={"id": key}, features=...)`, `gb.is_on(name)`, `gb.destroy()`: the SDK\'s '
        "documented usage in web frameworks (a new instance for every request, destroyed at its end). "
        "Passing `features=` parses the feature dict, as `load_features()` does from its cache in the "
        "documented middleware.",
        setup_growthbook_per_request,
    ),
    Contender(
        "GrowthBook (shared)",
        "growthbook",
        '`gb.set_attributes({"id": key})` then `gb.is_on(name)` on one instance made once: the cheapest '
        "way to reuse it, but one instance's attributes are process-wide state, so a threaded server "
        "cannot share it across concurrent requests (the SDK's multi-user client, `GrowthBookClient`, "
        "is asyncio-only).",
        setup_growthbook_shared,
    ),
)


# ------------------------------------------------------------------------------------- results


@dataclass
class Result:
    contender: Contender
    version: str
    share: float = math.nan
    """Fraction of the keys answered "on" / canary."""
    unsticky: int = 0
    """Keys among the first ``STICKY_KEYS`` that answered differently on a second pass."""
    formula_mismatches: int | None = None
    """shiprail only: keys whose answer differs from the formula of docs/flags.md."""
    error: str | None = None
    round_ns: list[int] = field(default_factory=list)
    """Per round: the total time of its batches."""
    batch_ns: list[float] = field(default_factory=list)
    """Per batch (round after round, in key order): its time divided by its size."""

    @property
    def name(self) -> str:
        return self.contender.name

    @property
    def share_ok(self) -> bool:
        return abs(self.share * 100 - WEIGHT) <= TOLERANCE_POINTS

    @property
    def ok(self) -> bool:
        return self.error is None and self.share_ok and self.unsticky == 0 and not self.formula_mismatches

    def problem(self) -> str:
        if self.error is not None:
            return self.error
        problems = []
        if not self.share_ok:
            problems.append(f"observed share {self.share:.2%}, not within {TOLERANCE_POINTS:g} point of {WEIGHT:g} %")
        if self.unsticky:
            problems.append(f"{self.unsticky} of the first {STICKY_KEYS} keys answered differently the second time")
        if self.formula_mismatches:
            problems.append(f"{self.formula_mismatches} keys differ from the formula of docs/flags.md")
        return "; ".join(problems)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def evals_per_s(r: Result, keys: int) -> float:
    return statistics.median(keys / (ns / 1e9) for ns in r.round_ns) if r.round_ns else math.nan


def ratio_to(r: Result, base: Result | None) -> float:
    """Median over batches of this contender's time for a batch / shiprail's for the same keys in the
    same round: the two ran within a fraction of a second of each other, under the same load."""
    if base is None or not r.batch_ns or len(base.batch_ns) != len(r.batch_ns):
        return math.nan
    return statistics.median(a / b for a, b in zip(r.batch_ns, base.batch_ns, strict=True))


def shiprail_formula(key: str) -> bool:
    """The canary test of docs/flags.md, written out independently of the SDK."""
    digest = hashlib.blake2b(f"{SALT}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10000 < WEIGHT * 100


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ----------------------------------------------------------------------------------- measuring


def check_contender(result: Result, setup: Setup, keys: Sequence[str]) -> None:
    """Untimed: the share of "on" over every key, stickiness, and (shiprail) the documented formula."""
    answers = [setup.check(key) for key in keys]
    result.share = sum(answers) / len(answers)
    again = [setup.check(key) for key in keys[:STICKY_KEYS]]
    result.unsticky = sum(a != b for a, b in zip(answers, again, strict=False))
    if result.contender.name == "shiprail":
        result.formula_mismatches = sum(a != shiprail_formula(k) for a, k in zip(answers, keys, strict=True))


def time_round(results: Sequence[Result], runs: Sequence[Runner], batches: Sequence[Sequence[str]], n: int) -> None:
    """Round ``n``: batch after batch, every contender evaluates the batch's keys, in an order that
    rotates from batch to batch (and round to round), each call of ``run`` timed."""
    clock = time.perf_counter_ns
    count = len(results)
    totals = [0] * count
    gc.collect()
    for b, batch in enumerate(batches):
        shift = (n * len(batches) + b) % count
        for i in [*range(shift, count), *range(shift)]:
            run = runs[i]
            started = clock()
            run(batch)
            elapsed = clock() - started
            totals[i] += elapsed
            results[i].batch_ns.append(elapsed / len(batch))
    for result, total in zip(results, totals, strict=True):
        result.round_ns.append(total)


def empty_call_ns(batches: Sequence[Sequence[str]]) -> float:
    """Median per-call time of the same loop calling a Python function that does nothing: the floor."""

    def nothing(key: str) -> None:
        return None

    def run(keys: Sequence[str]) -> None:
        for key in keys:
            nothing(key)

    probe = Result(Contender("empty call", "", "", lambda _: Setup(run, lambda _: False)), "")
    for n in range(3):
        time_round([probe], [run], batches, n)
    return statistics.median(probe.batch_ns)


def timer_ns() -> float:
    """Median cost of one ``time.perf_counter_ns()`` call (two back to back, differenced)."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(10_000):
        a = clock()
        b = clock()
        samples.append(b - a)
    return statistics.median(samples)


def run_evaluation(
    contenders: Sequence[Contender], args: argparse.Namespace, workdir: Path, console: Console
) -> tuple[list[Result], dict[str, float]]:
    keys = [f"user-{i}" for i in range(args.keys)]
    batches = [keys[i : i + args.batch] for i in range(0, len(keys), args.batch)]
    results: list[Result] = []
    setups: dict[str, Setup] = {}
    try:
        for contender in contenders:
            result = Result(contender, version_of(contender.package))
            results.append(result)
            try:
                setup = contender.setup(workdir)
            except Exception as exc:
                result.error = f"setup failed: {type(exc).__name__}: {exc}"
                console.print(f"[red]{contender.name}: {result.error}")
                continue
            setups[contender.name] = setup
            check_contender(result, setup, keys)
            mark = "[green]ok" if result.ok else f"[red]FAILS: {result.problem()}"
            console.print(f"{contender.name} {result.version}: share {result.share:.2%} {mark}")
        timed = [r for r in results if r.ok]
        runs = [setups[r.name].run for r in timed]
        for n in range(args.rounds if timed else 0):
            time_round(timed, runs, batches, n)
            summary = ", ".join(f"{r.name} {r.round_ns[-1] / len(keys):.0f} ns" for r in timed)
            console.print(f"round {n + 1}/{args.rounds}: {summary}")
        floor = {"empty call": empty_call_ns(batches), "timer": timer_ns()}
    finally:
        for name, setup in setups.items():
            try:
                setup.close()
            except Exception as exc:  # closing must not hide the results
                console.print(f"[yellow]{name}: close failed: {exc}")
    return results, floor


# -------------------------------------------------------------------------------------- output

HEADERS = ("contender", "package", "evaluations/s", "median ns/call", "p99 ns/call", "time × shiprail", "share on")


def rows(results: Sequence[Result], keys: int) -> list[list[str]]:
    base = next((r for r in results if r.name == "shiprail" and r.round_ns), None)
    out = []
    for r in results:
        share = "n/a" if math.isnan(r.share) else f"{r.share:.2%}"
        package = f"{r.contender.package} {r.version}"
        if not r.ok:
            out.append([r.name, package, "not timed", "", "", "", f"{share} (fails)"])
            continue
        ratio = ratio_to(r, base)
        out.append(
            [
                r.name,
                package,
                f"{evals_per_s(r, keys):,.0f}",
                f"{statistics.median(r.batch_ns):,.0f}",
                f"{pct(r.batch_ns, 99):,.0f}",
                "n/a" if math.isnan(ratio) else f"{ratio:.2f}×",
                share,
            ]
        )
    return out


def print_table(console: Console, results: Sequence[Result], args: argparse.Namespace, floor: dict[str, float]) -> None:
    table = Table(
        title=f"SDK evaluation: a {WEIGHT:g} % rollout, {args.keys:,} keys × {plural(args.rounds, 'round')} "
        f"(per call: median / p99 over {args.batch}-call batches)"
    )
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("contender", "package") else "right")
    for row in rows(results, args.keys):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"the loop calling an empty Python function: {floor['empty call']:.0f} ns a call; "
        f"time.perf_counter_ns(): {floor['timer']:.0f} ns a call"
    )
    for r in results:
        if not r.ok:
            console.print(f"[red]{r.name}: {r.problem()}")


def evaluation_section(
    results: Sequence[Result], args: argparse.Namespace, info: dict[str, str], when: str, floor: dict[str, float]
) -> str:
    base = next((r for r in results if r.name == "shiprail" and r.ok), None)
    includes = "\n".join(f"- *{r.name}*: {r.contender.includes}" for r in results)
    failing = [f"{r.name}: {r.problem()}" for r in results if not r.ok]
    failing_text = (
        "Failed the correctness check, so not timed: " + "; ".join(failing) + "."
        if failing
        else f"Every contender's share is within {TOLERANCE_POINTS:g} point of {WEIGHT:g} % and sticky."
    )
    formula = ""
    if base is not None and base.formula_mismatches == 0:
        formula = (
            f" shiprail's answers match the formula of `docs/flags.md` (blake2b of `salt:key`, "
            f"10,000 buckets), written out separately in the bench, for all {args.keys:,} keys."
        )
    against = f", against {statistics.median(base.batch_ns):.0f} ns for shiprail's evaluation" if base else ""
    speed = ""
    timed = [r for r in results if r.ok and r is not base]
    if base is not None and timed:
        parts = [f"{r.name} {ratio_to(r, base):.1f}×" for r in timed]
        speed = f"\n\nTime per evaluation relative to shiprail (median of the per-batch ratios): {', '.join(parts)}."
    return f"""{EVALUATION_START}
### SDK evaluation

How long one in-app evaluation of a {WEIGHT:g} % percentage rollout takes in shiprail's SDK and in
the Python SDKs of Unleash, LaunchDarkly and GrowthBook, each evaluating locally from flags given
to it offline (no server, no network, no events sent), for the same {args.keys:,} user keys
`user-0` … `user-{args.keys - 1}`.

Reproduce from the repository root (this part of the section is rewritten by the program):

    .venv/bin/python -m bench.sdk [--evaluation] [--rounds {ROUNDS}] [--keys {KEYS}] [--no-write]

Measured {when} on {info["nproc"]} cores ({info["cpu"]}, Linux {info["kernel"]}), Python
{info["python"]}, in one process, one thread.

Method: {plural(args.rounds, "round")}; in each, every contender evaluates all {args.keys:,} keys once. The
keys go in batches of {args.batch} consecutive keys and the contenders are interleaved batch by
batch: every contender evaluates the first batch (in an order that rotates from batch to batch),
then the second, and so on, so the calls compared on one batch ran a fraction of a second apart,
under the same load of this shared, noisy machine. Garbage is collected at the start of each round.
Each batch is timed with `time.perf_counter_ns` and divided by its size: timing single calls would
add the timer's own cost and jitter to each (one `perf_counter_ns()` call costs
{floor["timer"]:.0f} ns here{against}), while a batch spreads them over {args.batch} calls. So *median*
and *p99 ns/call* are over batch averages ({args.rounds * len(range(0, args.keys, args.batch)):,}
batches per contender, nearest rank): p99 is the slowest 1 % of batches, often a batch the machine
preempted, not the slowest 1 % of single calls. *evaluations/s* is keys / a round's total time,
median over rounds; *time × shiprail* is a contender's time for a batch / shiprail's for the same
batch in the same round, median over all batches. Every time includes the loop around the call:
the same loop calling an empty Python function takes {floor["empty call"]:.0f} ns a call.

Correctness, checked untimed before timing: *share on* is the share of the {args.keys:,} keys
answered "on" / canary; it must be within {TOLERANCE_POINTS:g} point of {WEIGHT:g} %, and the first
{STICKY_KEYS:,} keys must answer the same on a second pass. {failing_text}{formula}

{md_table(HEADERS, rows(results, args.keys))}{speed}

What one call includes:

{includes}

Setup, not timed: Unleash is bootstrapped from a dict into a `FileCache`, then
`initialize_client(fetch_toggles=False)` with `disable_registration` and `disable_metrics` (its
offline connector's reload from the cache is set to hourly so it does not run during the
measurement); LaunchDarkly reads a flag file through `Files.new_data_source` with
`send_events=False` and `diagnostic_opt_out=True` (not `offline=True`, which would answer the
default for everyone); GrowthBook's rule is `{{"force": true, "coverage": {WEIGHT / 100:g},
"hashAttribute": "id", "hashVersion": 2}}` (its hash: FNV-1a of seed and key, twice). Salts /
seeds / group ids are all `{SALT}`, so each contender's cohort is its own hash of the same keys:
the 10 % sets differ, only their size is compared.

{EVALUATION_END}"""


def propagation_placeholder() -> str:
    return f"""{PROPAGATION_START}
### Rollback propagation

How soon after shiprail publishes a rollback (weight 0) every SDK in contact serves stable is
measured by the same program's `--propagation` mode: `.venv/bin/python -m bench.sdk --propagation`.
Not measured yet.

{PROPAGATION_END}"""


def whole_section(evaluation: str) -> str:
    return f"""{MARK_START}
## SDK: in-app rollout (`bench/sdk.py`)

shiprail's SDK (`shiprail.sdk`, see `docs/flags.md`) against the Python SDKs of Unleash,
LaunchDarkly and GrowthBook, side by side in one run.

{evaluation}

{propagation_placeholder()}

{MARK_END}"""


def write_docs(evaluation: str, path: Path = DOCS) -> None:
    """Rewrite the evaluation part of the SDK section; create the section (propagation placeholder too)
    when missing. Everything else on the page, the propagation part included, is left as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = re.search(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), text, re.DOTALL)
    if section is None:
        text = text.rstrip("\n") + "\n\n" + reflow(whole_section(evaluation)) + "\n"
    else:
        inner = section.group(0)
        updated = replace_block(inner, EVALUATION_START, EVALUATION_END, evaluation)
        if updated is None:  # the section lost its evaluation part: put it back after the heading's paragraph
            updated = inner.replace(MARK_END, evaluation + "\n\n" + MARK_END, 1)
        text = text[: section.start()] + updated + text[section.end() :]
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


# ------------------------------------------------------------------------- rollback propagation

TRIALS = 50
SDKS = 20
SDK_PROCESSES = 2
PAUSE_S = 0.2
"""Between one transition's end (every SDK on it, the router done) and the next decision, plus a random
part of up to ``PAUSE_JITTER_S``."""
PAUSE_JITTER_S = 0.1
"""Two of serve's 50 ms looks in the store: without it, decisions paced from the previous one's end (itself
tied to a look, which stores the acknowledgements) fall at the same point of serve's cycle every time."""
WARMUP_TRIALS = 1
"""Rollout + rollback pairs run before the measured ones, not reported."""
GOAL_S = 1.0
SEEN_TIMEOUT_S = 10.0
"""How long a transition may take to reach every SDK before it is counted as never reaching some."""
READY_TIMEOUT_S = 30.0
MODES = ("embedded", "scaled")
MODE_TEXT = {
    "embedded": "the controller inside `shiprail serve` (its default): serve's app (`create_app`) and server "
    "(`shiprail.serve.server.Server`, on a listening socket made as `shiprail serve` makes it) in a thread of the "
    "bench process, the `FlagRouter` in the same process, so its publish wakes serve's hub at once",
    "scaled": "`shiprail serve --no-controller` in a process of its own, the `FlagRouter` in the bench process as "
    "a separate `shiprail controller` would run it: serve notices the new revision at its next look in the store "
    "(every 50 ms)",
}
PROPAGATION_HEADERS = (
    "mode",
    "transitions",
    "SDKs",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "first SDK p50 ms",
    "confirmed by router p50 ms",
    "confirmed by router p99 ms",
    "all SDKs confirmed",
    "p99 < 1 s",
)


class Sightings:
    """When each SDK applied each revision: ``time.perf_counter_ns()`` first thing in its ``on_change``.

    On Linux ``perf_counter_ns`` reads CLOCK_MONOTONIC, one clock for every process of the machine, so
    times taken in SDK worker processes compare with the bench's own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: dict[int, dict[int, tuple[float, int]]] = {}
        """revision → SDK → (the weight it applied, when)."""

    def saw(self, sdk: int, revision: int, weight: float, at_ns: int) -> None:
        with self._cond:
            self._seen.setdefault(revision, {}).setdefault(sdk, (weight, at_ns))
            self._cond.notify_all()

    def wait(self, revision: int, count: int, timeout_s: float) -> dict[int, tuple[float, int]]:
        """The SDKs that applied ``revision``, once ``count`` have or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._seen.get(revision, {})) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return dict(self._seen.get(revision, {}))


class Fleet:
    """SDK clients of the ``shop`` service, reporting every revision they apply to ``sightings``.

    ``start(..., processes=0)``: clients in threads of this process; otherwise split over that many
    worker processes (``python -m bench.sdk --sdk-worker URL``), each writing one line per applied
    revision on its stdout. ``close()`` is safe after a failed or partial start.
    """

    def __init__(self, sightings: Sightings) -> None:
        self.sightings = sightings
        self.clients: list[Client] = []
        self.workers: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []

    def start(self, url: str, key: str, count: int, processes: int, workdir: Path) -> None:
        """Start the SDKs; return once every one has applied its first config."""
        from shiprail import defaults
        from shiprail.sdk import Client

        if processes == 0:
            for i in range(count):
                self.clients.append(Client(url, SERVICE, key, on_change=self._reporter(i)))
            if not all(c.wait_ready(READY_TIMEOUT_S) for c in self.clients):
                raise RuntimeError(f"not every SDK fetched its first config within {READY_TIMEOUT_S:g} s")
            return
        env = {**os.environ, defaults.SDK_KEY_ENV: key, "PYTHONUNBUFFERED": "1"}
        first = 0
        readies: list[threading.Event] = []
        for w in range(processes):
            n = count // processes + (1 if w < count % processes else 0)
            with (workdir / f"sdk-worker-{w}.log").open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.sdk", "--sdk-worker", url, "--sdks", str(n)],
                    cwd=DOCS.parent.parent,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    start_new_session=True,
                )
            self.workers.append(proc)
            ready = threading.Event()
            readies.append(ready)
            reader = threading.Thread(target=self._read, args=(proc, first, ready), daemon=True)
            reader.start()
            self._readers.append(reader)
            first += n
        deadline = time.monotonic() + READY_TIMEOUT_S
        for w, ready in enumerate(readies):
            if not ready.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"SDK worker {w} was not ready within {READY_TIMEOUT_S:g} s (see {workdir})")

    def _reporter(self, sdk: int) -> Callable[[dict[str, Any]], None]:
        clock = time.perf_counter_ns
        saw = self.sightings.saw

        def on_change(config: dict[str, Any]) -> None:
            at = clock()
            saw(sdk, config["revision"], config["weight"], at)

        return on_change

    def _read(self, proc: subprocess.Popen[str], first: int, ready: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            if parts[:1] == ["saw"] and len(parts) == 5:
                self.sightings.saw(first + int(parts[1]), int(parts[2]), float(parts[3]), int(parts[4]))
            elif parts == ["ready"]:
                ready.set()

    def close(self) -> None:
        """Close the clients (in parallel: each may take a moment to end its long-poll); stop the workers."""
        closers = [threading.Thread(target=c.close) for c in self.clients]
        for t in closers:
            t.start()
        for proc in self.workers:
            if proc.stdin is not None:
                proc.stdin.close()  # the worker closes its clients and exits
        for t in closers:
            t.join(5)
        for proc in self.workers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(5)


def sdk_worker(url: str, count: int) -> int:
    """``--sdk-worker URL``: ``count`` clients in this process until stdin closes.

    Writes ``ready`` once all fetched their first config, then ``saw <sdk> <revision> <weight> <ns>``
    for every config one of them applies (``ns``: ``time.perf_counter_ns()`` in its ``on_change``).
    """
    from shiprail import defaults
    from shiprail.sdk import Client

    key = os.environ[defaults.SDK_KEY_ENV]
    lock = threading.Lock()
    clock = time.perf_counter_ns

    def reporter(sdk: int) -> Callable[[dict[str, Any]], None]:
        def on_change(config: dict[str, Any]) -> None:
            at = clock()
            with lock:
                sys.stdout.write(f"saw {sdk} {config['revision']} {config['weight']!r} {at}\n")
                sys.stdout.flush()

        return on_change

    clients = [Client(url, SERVICE, key, on_change=reporter(i)) for i in range(count)]
    try:
        if all(c.wait_ready(READY_TIMEOUT_S) for c in clients):
            with lock:
                sys.stdout.write("ready\n")
                sys.stdout.flush()
        sys.stdin.read()  # until the bench closes our stdin
    finally:
        closers = [threading.Thread(target=c.close) for c in clients]
        for t in closers:
            t.start()
        for t in closers:
            t.join(5)
    return 0


@dataclass(frozen=True)
class Transition:
    """One decision: ``router.set_weight(weight)`` and how far it got."""

    weight: float
    revision: int
    router_ns: int
    """How long ``set_weight`` took: publish, then waiting for the SDKs' acknowledgements."""
    seen_ns: tuple[int, ...]
    """Per SDK that applied the revision within SEEN_TIMEOUT_S: when, since the decision."""
    wrong_weight: int
    """SDKs whose applied config for this revision had another weight (never expected)."""
    confirmed: bool
    in_contact: int
    acknowledged: int

    def propagation_ns(self, sdks: int) -> float:
        """Decision → the last SDK on the new revision; infinite when some SDK never got there."""
        return max(self.seen_ns) if len(self.seen_ns) == sdks and self.seen_ns else math.inf

    def all_confirmed(self, sdks: int) -> bool:
        return self.confirmed and self.in_contact == sdks and self.acknowledged == sdks


@dataclass
class ModeResult:
    mode: str
    sdks: int
    transitions: list[Transition] = field(default_factory=list)
    error: str | None = None

    def rollbacks(self) -> list[Transition]:
        return [t for t in self.transitions if t.weight == 0]


def wait_in_contact(store: Store, count: int, revision: int, timeout_s: float) -> None:
    """Until the store lists ``count`` SDKs of the service acknowledging ``revision`` (what the router counts)."""
    from datetime import timedelta

    from shiprail import defaults
    from shiprail.store import flags

    deadline = time.monotonic() + timeout_s
    while True:
        since = datetime.now(UTC) - timedelta(seconds=defaults.FLAG_CONTACT_SECONDS)
        with store.transaction() as s:
            seen = flags.contacts(s, SERVICE, since)
        if len(seen) == count and all(c.revision == revision for c in seen):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(seen)} SDKs in contact, {sum(c.revision == revision for c in seen)} on "
                f"revision {revision}; expected {count}"
            )
        time.sleep(0.05)


def run_mode(mode: str, args: argparse.Namespace, workdir: Path, console: Console) -> ModeResult:
    """One deployment: serve, the SDKs, the router; warm-up, then ``args.trials`` rollout/rollback pairs."""
    from shiprail import defaults
    from shiprail.clock import WallClock
    from shiprail.demo import Process
    from shiprail.demo import project as demo_project
    from shiprail.routers import FlagRouter, FlagRouterConfig
    from shiprail.serve import SdkService, create_app
    from shiprail.serve.server import serve_in_thread
    from shiprail.store.db import Store, default_url

    result = ModeResult(mode, args.sdks)
    root = workdir / mode
    # A valid project: shiprail.yaml and services/shop.yaml on the flag router. Its webhook is never
    # called here: serve runs --no-controller (no notifier) and nothing sends notifications.
    demo_project.write(root, "http://127.0.0.1:9/unused")
    db = default_url(root)
    key = f"bench-{secrets.token_hex(8)}"
    clock = time.perf_counter_ns
    with contextlib.ExitStack() as stack:
        store = Store(db)  # created and migrated before serve opens it
        stack.callback(store.close)
        if mode == "embedded":
            services = {SERVICE: SdkService(SERVICE, defaults.SDK_KEY_ENV, key)}
            url = stack.enter_context(serve_in_thread(create_app(store, WallClock(), services)))
        else:
            env = {k: v for k, v in os.environ.items() if k != defaults.DATABASE_URL_ENV}
            env.update({defaults.SDK_KEY_ENV: key, "PYTHONUNBUFFERED": "1"})
            serve = Process(
                "shiprail serve",
                [sys.executable, "-m", "shiprail", "serve", "--port", "0", "--quiet", "--no-controller", "--db", db],
                cwd=root,
                log=root / defaults.STATE_DIR / "serve.log",
                env=env,
                ready=r"shiprail serve: (http://\S+)",
            )
            stack.callback(serve.stop)
            url = serve.url
        router = FlagRouter(
            FlagRouterConfig(type="flag"),
            store=store,
            clock=WallClock(),
            service=SERVICE,
            release=RELEASE,
            version="2.0.0",
            baseline="1.0.0",
        )
        router.set_weight(0.0)  # revision 1, the starting point; no SDK in contact yet
        start = router.confirmation["revision"] if router.confirmation else 1
        sightings = Sightings()
        fleet = Fleet(sightings)
        stack.callback(fleet.close)
        fleet.start(url, key, args.sdks, args.sdk_processes, workdir)
        wait_in_contact(store, args.sdks, start, READY_TIMEOUT_S)
        where = f"{args.sdk_processes} worker processes" if args.sdk_processes else "threads of the bench"
        console.print(f"{mode}: serve {url}, {args.sdks} SDKs in contact ({where})")
        for n in range(WARMUP_TRIALS + args.trials):
            for weight in (WEIGHT, 0.0):
                time.sleep(PAUSE_S + random.uniform(0, PAUSE_JITTER_S))
                t0 = clock()  # the decision
                router.set_weight(weight)
                router_ns = clock() - t0
                confirmation = router.confirmation or {}
                revision = int(confirmation.get("revision", 0))
                seen = sightings.wait(revision, args.sdks, SEEN_TIMEOUT_S)
                transition = Transition(
                    weight=weight,
                    revision=revision,
                    router_ns=router_ns,
                    seen_ns=tuple(sorted(at - t0 for _, at in seen.values())),
                    wrong_weight=sum(w != weight for w, _ in seen.values()),
                    confirmed=bool(confirmation.get("confirmed")),
                    in_contact=int(confirmation.get("sdks", 0)),
                    acknowledged=int(confirmation.get("acknowledged", 0)),
                )
                if n >= WARMUP_TRIALS:
                    result.transitions.append(transition)
                if not transition.all_confirmed(args.sdks) or len(seen) < args.sdks or transition.wrong_weight:
                    console.print(
                        f"[yellow]{mode}: revision {revision} (weight {weight:g}): {len(seen)}/{args.sdks} SDKs "
                        f"applied it, {transition.wrong_weight} with another weight; router: "
                        f"{confirmation.get('summary')}"
                    )
            if n >= WARMUP_TRIALS and (n - WARMUP_TRIALS + 1) % 10 == 0:
                done = result.rollbacks()
                latest = [t.propagation_ns(args.sdks) / 1e6 for t in done[-10:]]
                console.print(
                    f"{mode}: {len(done)}/{args.trials} rollbacks, last 10: "
                    f"{min(latest):.1f}-{max(latest):.1f} ms to the last SDK"
                )
    return result


def ms(ns: float) -> str:
    return "never" if math.isinf(ns) else f"{ns / 1e6:,.1f}"


def propagation_rows(results: Sequence[ModeResult]) -> list[list[str]]:
    out = []
    for r in results:
        if r.error is not None:
            out.append([r.mode, "failed", str(r.sdks), *[""] * (len(PROPAGATION_HEADERS) - 3)])
            continue
        for label, subset in (("rollbacks", r.rollbacks()), ("all", r.transitions)):
            if not subset:
                continue
            prop = [t.propagation_ns(r.sdks) for t in subset]
            first = [t.seen_ns[0] if t.seen_ns else math.inf for t in subset]
            router = [float(t.router_ns) for t in subset]
            confirmed = sum(t.all_confirmed(r.sdks) for t in subset)
            out.append(
                [
                    r.mode,
                    f"{len(subset)} {label}",
                    str(r.sdks),
                    ms(pct(prop, 50)),
                    ms(pct(prop, 90)),
                    ms(pct(prop, 99)),
                    ms(max(prop)),
                    ms(pct(first, 50)),
                    ms(pct(router, 50)),
                    ms(pct(router, 99)),
                    f"{confirmed}/{len(subset)}",
                    "yes" if pct(prop, 99) < GOAL_S * 1e9 else "NO",
                ]
            )
    return out


def goal_met(r: ModeResult) -> bool:
    rollbacks = r.rollbacks()
    return r.error is None and bool(rollbacks) and pct([t.propagation_ns(r.sdks) for t in rollbacks], 99) < GOAL_S * 1e9


def print_propagation(console: Console, results: Sequence[ModeResult], args: argparse.Namespace) -> None:
    for r in results:
        table = Table(
            title=f"Rollback propagation, {r.mode}: decision → last of {r.sdks} SDKs on the new revision "
            f"({args.trials} trials of {WEIGHT:g} % then 0 %)"
        )
        for h in PROPAGATION_HEADERS:
            table.add_column(h, justify="left" if h in ("mode", "transitions") else "right")
        for row in propagation_rows([r]):
            table.add_row(*row)
        console.print(table)
        if r.error is not None:
            console.print(f"[red]{r.mode}: {r.error}")


def propagation_section(
    results: Sequence[ModeResult], args: argparse.Namespace, info: dict[str, str], when: str
) -> str:
    hosting = (
        f"split over {args.sdk_processes} worker processes (`python -m bench.sdk --sdk-worker`), apart from "
        "serve and the router as SDKs in apps are"
        if args.sdk_processes
        else "as threads of the bench process (sharing its interpreter lock with the router and, embedded, serve)"
    )
    modes = "\n".join(f"- *{r.mode}*: {MODE_TEXT[r.mode]}." for r in results)
    command = (
        f".venv/bin/python -m bench.sdk --propagation [--trials {TRIALS}] [--sdks {SDKS}] \\\n"
        f"        [--sdk-processes {SDK_PROCESSES}] [--modes {','.join(MODES)}] [--no-write]"
    )
    largest = math.ceil(0.99 * args.trials) == args.trials
    p99_text = f"over {args.trials} rollbacks it is the largest value" if largest else f"over {args.trials} rollbacks"
    wrong = sum(t.wrong_weight for r in results for t in r.transitions)
    missing = sum(len(t.seen_ns) < r.sdks for r in results for t in r.transitions)
    checked = (
        "Every SDK applied every decision, each with the weight decided."
        if not wrong and not missing
        else f"{missing} decisions did not reach every SDK within {SEEN_TIMEOUT_S:g} s (counted as never); "
        f"{wrong} applied configs carried another weight than the one decided."
    )
    verdicts = []
    for r in results:
        if r.error is not None or not r.rollbacks():
            verdicts.append(f"{r.mode}: failed ({r.error or 'no rollback measured'})")
            continue
        p99 = pct([t.propagation_ns(r.sdks) for t in r.rollbacks()], 99)
        verdicts.append(f"{r.mode} {'met' if goal_met(r) else 'NOT met'} (p99 {ms(p99)} ms)")
    return f"""{PROPAGATION_START}
### Rollback propagation

How soon after the controller decides a rollback (weight {WEIGHT:g} % → 0) every SDK in contact
serves the new config, with real processes and real HTTP on loopback: `shiprail serve`, {args.sdks}
SDK clients (`shiprail.sdk.Client`, long-polling as in an app) and the flag router (`FlagRouter`)
on the same SQLite store, making the decision. Goal: p99 under {GOAL_S:g} s.

Reproduce from the repository root (this part of the section is rewritten by the program):

    {command}

Measured {when} on {info["nproc"]} cores ({info["cpu"]}, Linux {info["kernel"]}), Python
{info["python"]}. The SDKs ran {hosting}. Two deployments, each with a store of its own:

{modes}

Method: per trial the router sets {WEIGHT:g} % (a rollout step), then 0 % (the rollback). Each
decision comes {PAUSE_S:g} s plus a random 0-{PAUSE_JITTER_S * 1000:.0f} ms after the previous one
reached every SDK and the router returned (the random part spreads decisions over serve's 50 ms
cycle of looks in the store, which paced decisions would hit at the same point every time);
{plural(WARMUP_TRIALS, "trial")} before the {args.trials} measured ones is not reported. Per decision:

- *t0*: `time.perf_counter_ns()` just before `router.set_weight(w)` is called: the decision.
- *t_last*: the latest over the {args.sdks} SDKs of `time.perf_counter_ns()` taken first thing in
  each client's `on_change` callback for the new revision; the client calls it right after
  swapping in the new config, so from then on its `variant()` answers from it. On Linux this clock
  is CLOCK_MONOTONIC, one clock for every process of the machine.
- *propagation* (p50 … max) = t_last - t0; *first SDK*: the same for the earliest SDK.
- *confirmed by router*: how long `set_weight` took: the publish, then the wait until every SDK in
  contact acknowledged the revision (its next long-poll names it; serve stores that, the router
  reads it every 20 ms), which is when the controller considers the weight applied.
  *all SDKs confirmed*: decisions whose `router.confirmation` said confirmed with all {args.sdks} SDKs
  in contact and acknowledging.

p99 is the nearest-rank percentile: {p99_text}. The *all* rows add the rollout steps ({WEIGHT:g} %),
which take the same path. {checked}

{md_table(PROPAGATION_HEADERS, propagation_rows(results))}

Goal p99 < {GOAL_S:g} s for rollbacks: {"; ".join(verdicts)}.

{PROPAGATION_END}"""


def write_propagation_docs(block: str, path: Path = DOCS) -> None:
    """Rewrite the propagation part of the SDK section (added at the section's end, or with a section of
    its own, when missing). Everything else on the page is left as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    updated = replace_block(text, PROPAGATION_START, PROPAGATION_END, block)
    if updated is None:
        if MARK_END in text:
            updated = text.replace(MARK_END, block + "\n\n" + MARK_END, 1)
        else:
            heading = "## SDK: in-app rollout (`bench/sdk.py`)"
            updated = text.rstrip("\n") + f"\n\n{MARK_START}\n{heading}\n\n{block}\n\n{MARK_END}\n"
    path.write_text(updated if updated.endswith("\n") else updated + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=(__doc__ or "").split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--evaluation",
        dest="mode",
        action="store_const",
        const="evaluation",
        help="time local evaluation of a percentage rollout against the other SDKs (the default)",
    )
    mode.add_argument(
        "--propagation",
        dest="mode",
        action="store_const",
        const="propagation",
        help="time a rollback's way from the flag router's decision to the last SDK, through shiprail serve",
    )
    parser.set_defaults(mode="evaluation")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds of every contender (default {ROUNDS})")
    parser.add_argument(
        "--keys",
        type=int,
        default=KEYS,
        help=f"distinct user keys (default {KEYS}; under ~10000 the ±1 point share check is within sampling noise)",
    )
    parser.add_argument("--batch", type=int, default=BATCH, help=f"calls timed together (default {BATCH})")
    parser.add_argument(
        "--contenders",
        help="comma-separated subset, by name (default: all): " + ", ".join(c.name for c in CONTENDERS),
    )
    parser.add_argument(
        "--trials", type=int, default=TRIALS, help=f"propagation: rollout + rollback pairs per mode (default {TRIALS})"
    )
    parser.add_argument("--sdks", type=int, default=SDKS, help=f"propagation: SDK clients (default {SDKS})")
    parser.add_argument(
        "--sdk-processes",
        type=int,
        default=SDK_PROCESSES,
        help=f"propagation: worker processes holding the SDKs; 0: threads of the bench (default {SDK_PROCESSES})",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"propagation: comma-separated deployments (default: {','.join(MODES)})",
    )
    parser.add_argument("--sdk-worker", metavar="URL", help=argparse.SUPPRESS)  # a Fleet's worker process
    parser.add_argument(
        "--no-write", "--no-docs", dest="no_write", action="store_true", help="do not rewrite docs/benchmarks.md"
    )
    parser.add_argument("--docs", type=Path, default=DOCS, help="the page whose SDK section is rewritten")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.keys < STICKY_KEYS or args.batch < 1:
        parser.error(f"--rounds and --batch must be at least 1, --keys at least {STICKY_KEYS}")
    if args.trials < 1 or args.sdks < 1 or not 0 <= args.sdk_processes <= args.sdks:
        parser.error("--trials and --sdks must be at least 1, --sdk-processes from 0 to --sdks")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        parser.error(f"--modes takes {', '.join(MODES)}, not {', '.join(unknown) or 'nothing'}")
    if not args.no_write and not args.sdk_worker and (why := docs_problem(args.docs)):
        parser.error(why)
    if args.contenders is not None:
        names = {c.name.lower() for c in CONTENDERS}
        wanted = [s.strip() for s in args.contenders.split(",") if s.strip()]
        strangers = [s for s in wanted if s.lower() not in names]
        if strangers or not wanted:
            parser.error(
                f"--contenders takes {', '.join(c.name for c in CONTENDERS)}, not {', '.join(strangers) or 'nothing'}"
            )
    return args


def selected(spec: str | None) -> list[Contender]:
    if not spec:
        return list(CONTENDERS)
    wanted = {s.strip().lower() for s in spec.split(",") if s.strip()}
    return [c for c in CONTENDERS if c.name.lower() in wanted]  # names checked by parse_args


def main_evaluation(args: argparse.Namespace, console: Console) -> int:
    contenders = selected(args.contenders)
    info = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(", ".join(f"{k}: {v}" for k, v in info.items()))
    workdir = Path(tempfile.mkdtemp(prefix="shiprail-bench-sdk-"))
    started = time.monotonic()
    try:
        results, floor = run_evaluation(contenders, args, workdir, console)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    console.print(f"took {time.monotonic() - started:.0f} s")
    print_table(console, results, args, floor)
    if not args.no_write:
        write_docs(reflow(evaluation_section(results, args, info, when, floor)), args.docs)
        console.print(f"rewrote the SDK evaluation part of {args.docs}")
    return 0 if all(r.ok for r in results) else 1


def main_propagation(args: argparse.Namespace, console: Console) -> int:
    info = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(", ".join(f"{k}: {v}" for k, v in info.items()))
    workdir = Path(tempfile.mkdtemp(prefix="shiprail-bench-propagation-"))
    started = time.monotonic()
    results: list[ModeResult] = []
    for mode in args.modes:
        try:
            results.append(run_mode(mode, args, workdir, console))
        except Exception as exc:  # one deployment failing must not lose the other's results
            console.print(f"[red]{mode}: {type(exc).__name__}: {exc}")
            results.append(ModeResult(mode, args.sdks, error=f"{type(exc).__name__}: {exc}"))
    console.print(f"took {time.monotonic() - started:.0f} s")
    if any(r.error is not None for r in results):
        console.print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print_propagation(console, results, args)
    if not args.no_write:
        write_propagation_docs(reflow(propagation_section(results, args, info, when)), args.docs)
        console.print(f"rewrote the rollback propagation part of {args.docs}")
    return 0 if all(goal_met(r) for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sdk_worker:
        return sdk_worker(args.sdk_worker, args.sdks)
    console = Console(width=max(Console().width, 150))
    if args.mode == "evaluation":
        return main_evaluation(args, console)
    if args.mode == "propagation":
        return main_propagation(args, console)
    raise AssertionError(f"unknown mode {args.mode!r}")


if __name__ == "__main__":
    sys.exit(main())
