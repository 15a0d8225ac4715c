"""The ordered bucket e-process: its isotonic fit, its exact validity, and what it learns."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from shiprail.judges.ordered import OrderedEvidence, isotonic
from tests.unit.judges.sim import bucket_probabilities


def pool_adjacent_violators(values: list[float], weights: list[float]) -> list[float]:
    """The textbook loop, to check the vectorised max–min formula against."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for v, w in zip(values, weights, strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return [m for m, _, n in blocks for _ in range(int(n))]


def test_isotonic_pools_the_violators() -> None:
    fit = isotonic(np.array([[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]]), np.ones((2, 4)))
    assert fit.tolist() == [[1.0, 2.5, 2.5, 4.0], [2.5, 2.5, 2.5, 2.5]]


def test_isotonic_matches_pool_adjacent_violators_with_weights() -> None:
    rng = np.random.default_rng(3)
    values, weights = rng.normal(size=(200, 15)), rng.uniform(0.01, 2.0, size=(200, 15))
    fit = isotonic(values, weights)
    for row in range(200):
        expected = pool_adjacent_violators(values[row].tolist(), weights[row].tolist())
        assert fit[row] == pytest.approx(expected)


def compositions(n: int, k: int) -> list[tuple[int, ...]]:
    return [c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n]


def multinomial(counts: tuple[int, ...], p: np.ndarray) -> float:
    out = math.factorial(sum(counts))
    for c, q in zip(counts, p, strict=True):
        out *= q**c / math.factorial(c)
    return float(out)


def test_an_update_has_mean_at_most_one_whenever_the_canary_is_no_slower() -> None:
    # The exact mean over every outcome of a small update, for random ordered alternatives and
    # random pairs where the canary is stochastically no slower (or the same).
    rng = np.random.default_rng(11)
    nc, nb, k = 2, 3, 3
    for _ in range(40):
        r = np.sort(rng.uniform(0.05, 4.0, size=k))
        r /= float(rng.dirichlet(np.ones(k)) @ r)  # normalised against some baseline guess
        slow = rng.dirichlet(np.ones(k))
        fast = slow.copy()
        moved = rng.uniform(0, fast[-1])  # move mass from the slowest bucket to the fastest
        fast[-1] -= moved
        fast[0] += moved
        w = nc / (nc + nb)
        for canary, baseline in ((slow, slow), (fast, slow)):
            mean = 0.0
            for x in compositions(nc, k):
                for y in compositions(nb, k):
                    e = math.prod(r[i] ** x[i] / (w * r[i] + 1 - w) ** (x[i] + y[i]) for i in range(k))
                    mean += multinomial(x, canary) * multinomial(y, baseline) * e
            assert mean <= 1 + 1e-12


def simulate(rows: int, updates: int, canary: np.ndarray, baseline: np.ndarray, seed: int) -> np.ndarray:
    """The running maximum of each row's log e-value over ``updates`` of ~10 canary, ~90 baseline requests."""
    rng = np.random.default_rng(seed)
    ev = OrderedEvidence(rows, len(baseline))
    best = np.zeros(rows)
    for _ in range(updates):
        c = rng.multinomial(rng.poisson(10, rows), canary)
        b = rng.multinomial(rng.poisson(90, rows), baseline)
        ev.add(c.astype(float), b.astype(float))
        best = np.maximum(best, ev.log_e())
    return best


def test_a_healthy_canary_reaches_1_over_alpha_at_most_alpha_of_the_time() -> None:
    healthy = bucket_probabilities(0.08, 0.5)
    best = simulate(1000, 100, healthy, healthy, seed=1)
    assert float(np.mean(best >= math.log(20))) <= 0.05


def test_a_slower_canary_builds_evidence_and_a_faster_one_none() -> None:
    healthy = bucket_probabilities(0.08, 0.5)
    slower = simulate(100, 100, bucket_probabilities(0.1, 0.5), healthy, seed=2)
    faster = simulate(100, 100, bucket_probabilities(0.06, 0.5), healthy, seed=2)
    assert float(np.mean(slower >= math.log(100))) >= 0.9
    assert float(np.max(faster)) < math.log(20)


def test_an_update_under_one_request_in_all_still_has_mean_at_most_one() -> None:
    # Both versions wholly in the slowest bucket, 0.3 requests each: with the true share w = 0.5
    # the e-value is exactly 1; a share computed as 0.3 / max(0.6, 1) would give 2^0.3 / 1.3^0.6 > 1.
    ev = OrderedEvidence(1, 3)
    ev.add(np.array([[5.0, 5.0, 0.0]]), np.array([[5.0, 5.0, 0.0]]))
    before = ev.log_e()[0]
    ev.add(np.array([[0.0, 0.0, 0.3]]), np.array([[0.0, 0.0, 0.3]]))
    assert ev.log_e()[0] <= before + 1e-12


def test_the_first_update_and_one_sided_updates_give_no_evidence() -> None:
    ev = OrderedEvidence(1, 3)
    ev.add(np.array([[0.0, 0.0, 50.0]]), np.array([[50.0, 0.0, 0.0]]))  # nothing learnt before it
    assert ev.log_e().tolist() == [0.0]
    ev.add(np.array([[0.0, 0.0, 50.0]]), np.array([[0.0, 0.0, 0.0]]))  # the baseline served nothing
    assert ev.log_e().tolist() == [0.0]
    ev.add(np.array([[0.0, 0.0, 50.0]]), np.array([[50.0, 0.0, 0.0]]))
    assert float(ev.log_e()[0]) > math.log(100)


def test_one_row_on_python_floats_matches_the_array_code() -> None:
    # A live test (one row) computes its plug-in on Python floats; the benchmark's many rows use
    # the array code. Both must be the same e-process, up to the last bits of their sums.
    rng = np.random.default_rng(5)
    same = bucket_probabilities(0.08, 0.5)
    tail = bucket_probabilities(0.08, 0.5, 0.02, 5.0)
    for canary_p, scale in ((same, 1.0), (tail, 1.0), (tail, 1.0137)):  # 1.0137: fractional counts
        live, rows = OrderedEvidence(1, len(same)), OrderedEvidence(2, len(same))
        for _ in range(200):
            n = rng.poisson(100)
            c = rng.binomial(n, 0.1)
            canary = rng.multinomial(c, canary_p)[None, :] * scale
            baseline = rng.multinomial(n - c, same)[None, :] * scale
            live.add(canary, baseline)
            rows.add(np.vstack([canary, canary]), np.vstack([baseline, baseline]))
            assert live.log_e()[0] == pytest.approx(rows.log_e()[0], rel=1e-12, abs=1e-12)
        assert (live.canary == rows.canary[:1]).all() and (live.baseline == rows.baseline[:1]).all()
