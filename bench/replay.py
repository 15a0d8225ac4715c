"""What one analysis of a regression trigger costs as a release's history grows: kept test vs full replay.

A trigger's verdict is its sequential test after every increment the release's analyses stored.
The controller used to rebuild it at every analysis: read every stored analysis of the release
and feed every increment again. It now keeps each test between analyses
(``shiprail.controller.replays``) and reads only what was stored since. This program measures
both, side by side in one run, on a real store, from the repository root (``tests`` must be
importable)::

    .venv/bin/python -m bench.replay [--sizes 100,1000,8640] [--repeat 3] [--pg URL | --no-pg] [--no-docs]

On each store — a fresh SQLite file, and a fresh schema of the PostgreSQL database ``--pg``
names (dropped afterwards; ``--no-pg`` skips it) — a release of the example project
(``shiprail init``) is created, and analyses are stored for it the way the controller stores
them: one row per analysis, holding an error-rate regression trigger's increment (canary and
baseline requests and errors) and a latency regression trigger's (both versions' 15 histogram
buckets). At each size *n* (8,640 is a 24-hour validation analysed every 10 s), one more analysis
is judged both ways, each timed ``--repeat`` times (the fastest is reported):

- *full replay*: ``regression_increments`` for the whole release, then ``judge_regression`` with
  the stored increments as a list (a fresh test fed all of them, then the new one);
- *kept*: the tests of a ``ReleaseReplays`` that has read the first *n* − 1 analyses read the
  last one (``regression_increments`` after analysis *n* − 1, one row), and ``judge_regression``
  feeds the new increment to a copy of each.

Both give the same verdicts (checked). The section between ``<!-- bench:replay:start -->`` and
``<!-- bench:replay:end -->`` of ``docs/benchmarks.md`` is rewritten unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from tests.support.stores import pg_schema_store

from bench.page import docs_problem, machine, md_table, reflow, write_section
from shiprail.cli.init import write_project
from shiprail.clock import SimulatedClock
from shiprail.controller.replays import ReleaseReplays
from shiprail.defaults import LATENCY_BUCKETS
from shiprail.domain.contract import TriggerResult
from shiprail.judges.contract import Increment, judge_regression
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.schema.plan import Regression, Trigger
from shiprail.schema.resolved import canonical_json
from shiprail.store.db import Store
from shiprail.store.models import Analysis
from shiprail.store.rollouts import regression_increments

DOCS = Path("docs/benchmarks.md")
MARK_START = "<!-- bench:replay:start -->"
MARK_END = "<!-- bench:replay:end -->"
SIZES = (100, 1000, 8640)
REPEAT = 3
SEED = 5
SQLITE, POSTGRESQL = "SQLite", "PostgreSQL"
STORE_NAMES = {SQLITE: "SQLite (a file)", POSTGRESQL: "PostgreSQL (local, a fresh schema)"}
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PLAN = Path("releases/checkout-2.4.0.yaml")

ERRORS, LATENCY = "error-regression", "latency-regression"
TRIGGERS = (
    (Trigger(name=ERRORS, metric="error_rate", regression=Regression(alpha=0.01)), "error_rate", ERRORS),
    (Trigger(name=LATENCY, metric="latency", regression=Regression(alpha=0.01)), "latency", LATENCY),
)


def increments(rng: np.random.Generator) -> dict[str, Increment]:
    """One analysis's increments: 10 s of 100 requests a second, 10 % to the canary, healthy."""
    nc, nb = int(rng.poisson(100)), int(rng.poisson(900))
    bounds = [float(b) for b in LATENCY_BUCKETS] + [math.inf]
    probs = np.diff(np.concatenate([[0.0], np.linspace(0.05, 1.0, len(bounds) - 1) ** 0.3, [1.0]]))

    def buckets(n: int) -> tuple[tuple[float, float], ...]:
        counts = np.cumsum(rng.multinomial(n, probs / probs.sum()))
        return tuple((b, float(c)) for b, c in zip(bounds, counts, strict=True))

    return {
        ERRORS: Increment(nc, nb, float(rng.binomial(nc, 0.001)), float(rng.binomial(nb, 0.001))),
        LATENCY: Increment(nc, nb, canary_buckets=buckets(nc), baseline_buckets=buckets(nb)),
    }


def store_analyses(store: Store, release_id: str, rows: Sequence[dict[str, Increment]], start: datetime) -> None:
    with store.transaction() as s:
        for i, incs in enumerate(rows):
            results = [
                {"trigger": name, "verdict": "pass", "reason": "", "increment": inc.to_json()}
                for name, inc in incs.items()
            ]
            s.add(
                Analysis(
                    release_id=release_id,
                    at=start + timedelta(seconds=10 * i),
                    status="verifying",
                    step=None,
                    weight=10.0,
                    verdict="pass",
                    results=canonical_json(results),
                )
            )


def fastest(setup: Callable[[], Any], fn: Callable[[Any], Any], repeat: int) -> tuple[float, Any]:
    """The fastest of ``repeat`` timed calls of ``fn`` on a fresh ``setup()`` each (not timed)."""
    best, out = math.inf, None
    for _ in range(repeat):
        state = setup()
        t0 = time.perf_counter()
        out = fn(state)
        best = min(best, time.perf_counter() - t0)
    return best, out


@contextlib.contextmanager
def open_store(backend: str, root: Path, pg_url: str) -> Iterator[Store]:
    """A fresh store: a SQLite file under ``root``, or a schema of its own on PostgreSQL (dropped after)."""
    if backend == SQLITE:
        store = Store(f"sqlite:///{root / 'shiprail.db'}")
        try:
            yield store
        finally:
            store.close()
        return
    with pg_schema_store(pg_url, "bench_replay_") as store:
        yield store


def measure(args: argparse.Namespace, console: Console, backend: str) -> list[dict[str, Any]]:
    """Both ways at every size, on a fresh store of ``backend`` with the example project."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root)
        os.chdir(root)
        try:
            with open_store(backend, root, args.pg) as store:
                return measure_on(args, console, backend, store, root)
        finally:
            os.chdir(args.cwd)


def measure_on(
    args: argparse.Namespace, console: Console, backend: str, store: Store, root: Path
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    svc = Releases(store, SimulatedClock(), open_project(root).policy)
    rid = svc.create(check_plan_file(PLAN), "alice").id
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stored = 0
    kept = ReleaseReplays()

    def add(count: int) -> None:
        nonlocal stored
        batch = [increments(rng) for _ in range(count)]
        store_analyses(store, rid, batch, start + timedelta(seconds=10 * stored))
        stored += count

    def full(now: dict[str, Increment], _: None) -> list[TriggerResult]:
        with store.transaction() as s:
            history = regression_increments(s, rid)[0]
        return [judge_regression(t, kind, history[name], now[name])[0] for t, kind, name in TRIGGERS]

    def kept_way(now: dict[str, Increment], mine: ReleaseReplays) -> list[TriggerResult]:
        with store.transaction() as s:
            mine.read(*regression_increments(s, rid, mine.last))
        verdicts = []
        for t, kind, name in TRIGGERS:
            test = mine.replay(t, kind)
            assert test is not None
            verdicts.append(judge_regression(t, kind, test, now[name])[0])
        return verdicts

    def kept_copy() -> ReleaseReplays:
        return ReleaseReplays(kept.last, {}, {k: (b, r.copy()) for k, (b, r) in kept.replays.items()})

    out = []
    for n in sorted(args.sizes):
        # The kept tests have read every analysis but the last stored one, as at an analysis of
        # the controller, whose previous analysis stored a row since it last read.
        add(n - 1 - stored)
        with store.transaction() as s:
            kept.read(*regression_increments(s, rid, kept.last))
        for trigger, kind, _ in TRIGGERS:
            kept.replay(trigger, kind)
        add(1)
        now = increments(rng)
        t_full, v_full = fastest(lambda: None, partial(full, now), args.repeat)
        t_kept, v_kept = fastest(kept_copy, partial(kept_way, now), args.repeat)
        if v_full != v_kept:
            raise SystemExit(f"at {n} analyses the kept tests judged {v_kept}, the full replay {v_full}")
        out.append({"store": backend, "n": n, "full": t_full, "kept": t_kept})
        console.print(f"{backend}, {n:,} analyses: full replay {t_full * 1000:.1f} ms, kept {t_kept * 1000:.2f} ms")
    return out


def rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["store"],
            f"{r['n']:,}",
            f"{r['full'] * 1000:,.1f} ms",
            f"{r['kept'] * 1000:.2f} ms",
            f"{r['full'] / r['kept']:,.0f}×",
        ]
        for r in results
    ]


HEADERS = ["store", "analyses stored", "full replay", "kept tests", "full / kept"]


def section(results: Sequence[dict[str, Any]], args: argparse.Namespace, info: dict[str, str], when: str) -> str:
    stores = " and ".join(dict.fromkeys(STORE_NAMES[r["store"]] for r in results))
    sizes = ",".join(str(n) for n in args.sizes)
    return f"""{MARK_START}
## Regression triggers: the cost of one analysis as the release's history grows (`bench/replay.py`)

A regression trigger's verdict is its sequential test after every increment the release's
analyses stored. Rebuilding the tests at every analysis (*full replay*: read every stored
analysis, feed every increment again) made an analysis cost what the release had seen so far;
the controller now keeps them between analyses (*kept tests*, `shiprail.controller.replays`) and
reads only what was stored since. One error-rate and one latency regression trigger, analyses
stored as the controller stores them (10 s of 100 requests a second each, 10 % canary), on
{stores}; one more analysis judged both ways at each size, the fastest of {args.repeat} runs.
Both ways gave the same verdicts at every size. 8,640 analyses are a 24-hour validation
analysed every 10 s.

    .venv/bin/python -m bench.replay --sizes {sizes} --repeat {args.repeat}{"" if args.pg_on else " --no-pg"}

Measured {when} on {info["nproc"]} cores ({info["cpu"]}), Python {info["python"]}.

{md_table(HEADERS, rows(results))}

{MARK_END}"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SIZES),
        help="analyses stored before the one judged, comma-separated (default 100,1000,8640)",
    )
    parser.add_argument("--repeat", type=int, default=REPEAT, help=f"timed runs per size (default {REPEAT})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the simulated traffic (default {SEED})")
    parser.add_argument("--pg", default=PG_URL, help=f"the PostgreSQL database to work in (default {PG_URL})")
    parser.add_argument("--no-pg", dest="pg_on", action="store_false", help="SQLite only")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    try:
        args.sizes = tuple(sorted({int(x) for x in args.sizes.split(",")}))
    except ValueError:
        parser.error(f"--sizes takes comma-separated numbers of analyses, not {args.sizes!r}")
    if min(args.sizes) < 3 or args.repeat < 1:
        parser.error("--sizes must be at least 3 each and --repeat at least 1")
    if not args.no_docs and (why := docs_problem(Path.cwd() / DOCS)):
        parser.error(why)
    if args.pg_on:
        try:
            backend = make_url(args.pg).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend != "postgresql":
            parser.error(f"--pg takes a postgresql:// URL, not {args.pg!r}; or give --no-pg")
    args.cwd = Path.cwd()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    info = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for backend in (SQLITE, POSTGRESQL) if args.pg_on else (SQLITE,):
        try:
            results += measure(args, console, backend)
        except OperationalError as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
            console.print(
                f"[red]PostgreSQL at {args.pg} could not be used ({reason}); give --no-pg to skip it", soft_wrap=True
            )
            return 1
    table = Table(title="One analysis of two regression triggers")
    for h in HEADERS:
        table.add_column(h, justify="right")
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    if not args.no_docs:
        write_section(reflow(section(results, args, info, when)), MARK_START, MARK_END, args.cwd / DOCS)
        console.print(f"rewrote the replay section of {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
