"""How soon a slow latency tail can be found at a trickle of traffic: plug-ins of the ordered test side by side.

The one scenario of ``bench/judges.py`` where shiprail's latency test is not 2× faster than the
best rule is a slowdown of the slowest 2 % of requests (×5) at 10 requests a second with a 10 %
canary. This program asks whether another plug-in would do it without losing elsewhere: it runs
the ordered e-process (``shiprail.judges.ordered``) with other alternatives — every one of them
predictable and non-decreasing, so every one is a valid test — on the runs of ``bench/judges.py``
(same seed, same simulation), on that scenario and on two +10 % shifts at the same traffic, and
reports each one's median time to roll back and its power within the hour. For reference: the
two-sample oracle (told the true ratio in every bucket) and the canary's second request above
500 ms (one slow request in a bucket the baseline never reached is worth at most ``1/w``, 10 at
a 10 % canary, short of ``1/α`` = 20; see docs/judges.md).

Run it from the repository root::

    .venv/bin/python -m bench.tail_frontier [--runs 1000] [--seed 5] [--jobs N] [--no-write]

It prints a table and rewrites its section of ``docs/benchmarks.md`` (between
``<!-- bench:frontier:start -->`` and ``<!-- bench:frontier:end -->``); ``--no-write`` leaves the
page alone.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.judges import (
    ALPHA,
    BLOCK_S,
    BOUNDS,
    F64,
    LATENCY_LIMIT_S,
    SEED,
    LatencyData,
    Scenario,
    first_reach,
    first_true,
    fmt_time,
    latency_log_ratios,
    nearest_rank,
    order_trace,
    rich_table,
    simulate_latency,
    two_sample_llr,
)
from bench.page import docs_problem, machine, md_table, page_options, reflow, write_section
from shiprail.judges.ordered import OrderedEvidence, isotonic, log_e_values

DOCS = Path("docs/benchmarks.md")
MARK_START = "<!-- bench:frontier:start -->"
MARK_END = "<!-- bench:frontier:end -->"
RUNS = 1000

SCENARIOS = (
    Scenario("latency", 10, 0.10, slow="tail"),
    Scenario("latency", 10, 0.10, slow="+10%"),
    Scenario("latency", 10, 0.01, slow="+10%"),
)
# The plug-ins' settings tried against the default (0.2 pseudo-requests above the median, s = 100).
STRONG = {"canary_pseudo_count": 2.0, "shrink": 250.0}
HIGH_PRIOR = {"canary_pseudo_count": 1.0, "shrink": 200.0, "prior_above": 0.9}
# Unseen: the smallest ratio bet on the buckets above the baseline's slowest request so far.
UNSEEN_RATIO = 50.0
# Tail only: the fit is kept to the buckets whose upper bound is above this quantile of the baseline.
TAIL_QUANTILE = 0.99


class Unseen(OrderedEvidence):
    """The default plug-in, with a ratio of at least ``UNSEEN_RATIO`` above the baseline's slowest bucket so far.

    Raising a non-decreasing sequence's top buckets to at least a constant keeps it non-decreasing.
    """

    def ratios(self) -> np.ndarray:
        r = super().ratios()
        seen = self.baseline > 0
        k = seen.shape[1]
        top = np.where(seen.any(axis=1), k - 1 - np.argmax(seen[:, ::-1], axis=1), -1)
        above = (np.arange(k)[None, :] > top[:, None]) & (self.canary.sum(axis=1) > 0)[:, None]
        out: np.ndarray = np.where(above, np.maximum(r, UNSEEN_RATIO), r)
        return out


class TailOnly(OrderedEvidence):
    """The isotonic fit on the buckets above the baseline's ``TAIL_QUANTILE`` only, at least 1 there; 1 below."""

    def ratios(self) -> np.ndarray:
        nc, p_b, p_c = self.shares()
        inside = p_b.cumsum(axis=1) >= TAIL_QUANTILE
        fitted = isotonic(np.where(inside, p_c / p_b, 0.0), np.where(inside, p_b, 1e-9))
        fitted = np.where(nc[:, None] > 0, fitted, 1.0)
        fitted = np.where(inside, np.maximum(fitted, 1.0), 1.0)
        out: np.ndarray = 1.0 + (nc / (nc + self.shrink))[:, None] * (fitted - 1.0)
        return out


class Pair(OrderedEvidence):
    """Two plug-ins on the same counts, the default and ``STRONG``.

    ``leader``: each update bets with the alternative of the one whose own e-process is higher so
    far (a predictable choice, so the product is again a test supermartingale, at no cost in
    evidence); ``mean``: the mean of the two e-processes (costs at most log 2).
    """

    def __init__(self, rows: int, buckets: int, mode: str) -> None:
        super().__init__(rows, buckets)
        self.parts = (OrderedEvidence(rows, buckets), OrderedEvidence(rows, buckets, **STRONG))
        self.mode = mode

    def add(self, canary: np.ndarray, baseline: np.ndarray) -> None:
        logs = np.stack([log_e_values(canary, baseline, part.ratios()) for part in self.parts])
        lead = np.argmax(np.stack([part.log_sum for part in self.parts]), axis=0)  # ties: the default
        self.log_sum += logs[lead, np.arange(logs.shape[1])]
        for part, log_e in zip(self.parts, logs, strict=True):
            part.log_sum += log_e
            part.canary += canary
            part.baseline += baseline
        self.canary += canary
        self.baseline += baseline

    def log_e(self) -> np.ndarray:
        if self.mode == "mean":
            out: np.ndarray = np.logaddexp(self.parts[0].log_sum, self.parts[1].log_sum) - math.log(2)
            return out
        return self.log_sum.copy()


VARIANTS: dict[str, Callable[[int, int], OrderedEvidence]] = {
    "the default (0.2 pseudo-requests above the median, s = 100)": OrderedEvidence,
    "stronger prior, slower shrinkage (2 above the median, s = 250)": lambda r, b: OrderedEvidence(r, b, **STRONG),
    "prior above the baseline's p90 only (1, s = 200)": lambda r, b: OrderedEvidence(r, b, **HIGH_PRIOR),
    f"a ratio of at least {UNSEEN_RATIO:g} above the baseline's slowest request": Unseen,
    "the leader of the default and the stronger prior, chosen each update by its evidence so far": lambda r, b: Pair(
        r, b, "leader"
    ),
    "the mean of those two e-processes": lambda r, b: Pair(r, b, "mean"),
    f"the fit kept to the buckets above the baseline's p{TAIL_QUANTILE * 100:g}": TailOnly,
}
ORACLE = "two-sample oracle, told the ratios (reference)"
# What learning may cost: the oracle's evidence divided by this factor still reaching 1/α.
LEARNING_LOSS = 2.0
ORACLE_LOSS = f"the oracle with its evidence divided by {LEARNING_LOSS:g} (reference)"
SECOND = "the canary's second request above 500 ms (reference)"


@dataclass(frozen=True)
class Cell:
    median_s: float
    power: float

    def text(self) -> str:
        return f"{fmt_time(self.median_s)} ({self.power:.0%})"


def rollback_seconds(trace: F64, alpha: float, loss: float = 1.0) -> F64:
    """When each run's log e-value, less ``log(loss)``, first reaches ``log(1/α)``."""
    out: F64 = first_reach(trace, math.log(loss / alpha)) * BLOCK_S
    return out


def cell(seconds: F64) -> Cell:
    return Cell(nearest_rank(seconds, 0.5), float(np.isfinite(seconds).mean()))


def runs_of(sc: Scenario, runs: int, seed: int) -> LatencyData:
    """The scenario's runs, the same as bench/judges.py draws for it."""
    return simulate_latency(sc, runs, np.random.default_rng([seed, zlib.crc32(sc.name.encode())]))


def run_one(sc: Scenario, variant: str, runs: int, seed: int, alpha: float) -> Cell:
    """One scenario's runs through one plug-in or reference."""
    if variant in (ORACLE, ORACLE_LOSS):
        trace = oracle_trace(sc, runs, seed)
        return cell(rollback_seconds(trace, alpha, LEARNING_LOSS if variant == ORACLE_LOSS else 1.0))
    d = runs_of(sc, runs, seed)
    if variant == SECOND:
        above = np.array((*BOUNDS, math.inf)) > LATENCY_LIMIT_S
        return cell(first_true(np.cumsum(d.hc[:, :, above].sum(axis=2), axis=1) >= 2) * BLOCK_S)
    return cell(rollback_seconds(order_trace(d.hc, d.hb, VARIANTS[variant]), alpha))


def oracle_trace(sc: Scenario, runs: int, seed: int) -> F64:
    """The two-sample oracle's log e-value after each update, on the runs ``run_one`` draws."""
    d = runs_of(sc, runs, seed)
    out: F64 = np.cumsum(two_sample_llr(d.hc, d.hb, latency_log_ratios(sc)), axis=1)
    return out


def matching_loss(trace: F64, alpha: float, median_s: float) -> float:
    """The smallest factor (in steps of 5 %) dividing the oracle's evidence that makes it as slow as ``median_s``."""
    loss = 1.0
    while loss < 1e3 and nearest_rank(rollback_seconds(trace, alpha, loss), 0.5) < median_s:
        loss *= 1.05
    return loss


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=RUNS, help=f"runs per scenario (default {RUNS})")
    ap.add_argument("--seed", type=int, default=SEED, help=f"the seed bench/judges.py uses too (default {SEED})")
    ap.add_argument("--alpha", type=float, default=ALPHA, help=f"the tests' α (default {ALPHA:g})")
    page_options(ap, DOCS)
    args = ap.parse_args(argv)
    if args.runs < 1 or args.jobs < 1 or not 0 < args.alpha < 1:
        ap.error("--runs and --jobs must be at least 1 and --alpha between 0 and 1")
    if not args.no_write and (why := docs_problem(args.docs)):
        ap.error(why)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    info = machine(numpy=np.__version__)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [*VARIANTS, ORACLE, ORACLE_LOSS, SECOND]
    jobs = [(sc, v) for v in rows for sc in SCENARIOS if not (v == SECOND and sc.slow != "tail")]
    started = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {job: pool.submit(run_one, *job, args.runs, args.seed, args.alpha) for job in jobs}
        cells = {job: f.result() for job, f in futures.items()}
    took = time.monotonic() - started
    headers = ["alternative", *(sc.name.removeprefix("latency: ") for sc in SCENARIOS)]
    table = [[v, *(cells[(sc, v)].text() if (sc, v) in cells else "–" for sc in SCENARIOS)] for v in rows]
    tail = SCENARIOS[0]
    default = cells[(tail, next(iter(VARIANTS)))]
    loss = matching_loss(oracle_trace(tail, args.runs, args.seed), args.alpha, default.median_s)
    title = f"median time to roll back (power within the hour), {args.runs} runs, seed {args.seed}"
    console.print(rich_table(title, headers, table))
    console.print(f"the default's median on the tail = the oracle's with its evidence divided by {loss:.1f}")
    console.print(f"took {took:.0f} s")
    if not args.no_write:
        body = f"""{MARK_START}
## A slow tail at a trickle: other plug-ins (`bench/tail_frontier.py`)

Whether another alternative for the ordered latency test (`shiprail.judges.ordered`) would find
the slow tail of 2 % of requests ×5 at 10 requests a second, 10 % canary — the one scenario where
`bench/judges.py` finds shiprail, analysing every 10 s at α, less than 2× faster than the best rule
(see its goal (c) for the other readings) — without losing
elsewhere. Every alternative below is predictable and non-decreasing, so each is a valid test;
they differ in where they bet. Same runs as `bench/judges.py` (same seed and simulation), α =
{args.alpha:g}, updates every 10 s; each cell is the median time to roll back, runs without a
rollback counting as infinite, and the share of runs rolled back within the hour.

Reproduce from the repository root (this section is rewritten by the program):

    .venv/bin/python -m bench.tail_frontier --runs {args.runs} --seed {args.seed}

Measured {when} on {info["nproc"]} cores ({info["cpu"]}, Linux {info["kernel"]}), Python {info["python"]},
numpy {info["numpy"]}; the run took {took:.0f} s on {args.jobs} process{"es" if args.jobs != 1 else ""}.

{md_table(headers, table)}

One canary request in a bucket the baseline never reached is worth at most `1/w` (10 with a 10 %
canary) against `1/α` ({1 / args.alpha:g}), so without a test told the regression's shape (the oracle) a rollback
needs the canary's second slow request or evidence from the rest of the distribution. Betting
harder on empty slow buckets or on the tail alone pays on the tail and costs on the shifts.

What learning costs: the oracle is told the true ratio in every bucket; a test that is not has to
learn them from the canary's requests (about 60 a minute here), and loses evidence doing so. On the
tail, the oracle rolls back in a median of {fmt_time(cells[(tail, ORACLE)].median_s)}, and with its evidence divided
by {LEARNING_LOSS:g} (about {math.log(LEARNING_LOSS):.1f} of the {math.log(1 / args.alpha):.1f} nats that 1/α needs) in
{fmt_time(cells[(tail, ORACLE_LOSS)].median_s)}. The default's {fmt_time(default.median_s)} is the oracle's
median with its evidence divided by about {loss:.1f}: that is what learning the regression's shape costs it here.

{MARK_END}"""
        write_section(reflow(body), MARK_START, MARK_END, args.docs)
        console.print(f"rewrote the frontier section of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
