"""The siting solver against brute force: on instances small enough to try every choice
of sites, the gap it states is honoured, its bound is never below the optimum, and
"optimal" means optimal."""

import itertools

import numpy as np
import pytest

from analysis.siting_solve import Coverage, _bound, _counts, _interchange, _rows, solve


def instance(seed: int, n: int = 70, m: int = 14, reach: float = 0.3, whole: bool = True):
    """Demand and candidates in a unit square, each point reached by several candidates
    (a weak LP relaxation, as at 500 m); weights whole or fractional."""
    rng = np.random.default_rng(seed)
    demand, sites = rng.uniform(0, 1, (n, 2)), rng.uniform(0, 1, (m, 2))
    weights = rng.integers(1, 10, n).astype(float) if whole else rng.uniform(0.1, 9, n)
    near = np.linalg.norm(demand[:, None] - sites[None], axis=2) <= reach
    d, s = np.nonzero(near)
    return Coverage(n, m, d, s), weights, near


def best_by_brute_force(near: np.ndarray, weights: np.ndarray, p: int) -> float:
    return max(
        weights[near[:, list(choice)].any(axis=1)].sum()
        for choice in itertools.combinations(range(near.shape[1]), p)
    )


def covered(cover: Coverage, weights: np.ndarray, sites: np.ndarray) -> float:
    is_open = np.zeros(cover.n_sites, dtype=bool)
    is_open[sites] = True
    return float(weights[cover.covered(is_open)].sum())


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("gap", [0.0, 0.005, 0.05, 0.3])
@pytest.mark.parametrize("seed", range(6))
def test_stated_gap_is_honoured(seed, gap, whole):
    cover, weights, near = instance(seed, whole=whole)
    p = 3 + seed % 3
    best = best_by_brute_force(near, weights, p)
    everyone, no_one = np.ones(cover.n_sites, dtype=bool), np.zeros(cover.n_sites, dtype=bool)
    solution = solve(cover, weights, everyone, no_one, p=p, gap=gap)
    found = covered(cover, weights, solution.chosen)
    assert found == pytest.approx(solution.gains.sum())
    assert len(solution.chosen) <= p
    assert solution.bound >= best - 1e-9  # a bound, never below the optimum
    assert best <= found * (1 + solution.gap) + 1e-9  # the gap stated holds
    assert solution.gap <= gap + 1e-12  # stopped at the tolerance, not at the time limit
    if solution.optimal:
        assert found == pytest.approx(best) and solution.gap == 0
    if gap == 0:
        assert solution.optimal


@pytest.mark.parametrize("seed", range(6))
def test_lagrangian_bound_and_interchange(seed):
    cover, weights, near = instance(seed, whole=False)
    everyone = np.ones(cover.n_sites, dtype=bool)
    rows = _rows(cover, weights, np.ones(cover.n_demand, dtype=bool), everyone)
    n_x = len(rows.used)
    for p in (2, 4):
        best = best_by_brute_force(near, weights, p)
        assert _bound(rows, p, 0.0, 0.0, deadline=float("inf")) >= best - 1e-9
        chosen = _interchange(rows, np.arange(p), deadline=float("inf"))
        is_open = np.zeros(n_x, dtype=bool)
        is_open[chosen] = True
        value = rows.weight[_counts(rows, is_open) > 0].sum()
        for out, into in itertools.product(chosen, np.flatnonzero(~is_open)):  # 1-swap optimum
            swapped = is_open.copy()
            swapped[[out, into]] = [False, True]
            assert rows.weight[_counts(rows, swapped) > 0].sum() <= value + 1e-9


def test_time_limit_states_a_true_gap():
    """Stopped before any proof, the gap stated is still one that holds."""
    cover, weights, near = instance(3, n=90, m=16, reach=0.35)
    best = best_by_brute_force(near, weights, 4)
    everyone, no_one = np.ones(cover.n_sites, dtype=bool), np.zeros(cover.n_sites, dtype=bool)
    solution = solve(cover, weights, everyone, no_one, p=4, gap=0.0, time_limit=1e-9)
    found = covered(cover, weights, solution.chosen)
    assert solution.bound >= best - 1e-9
    assert best <= found * (1 + solution.gap) + 1e-9
    assert solution.optimal == (found == best and solution.gap == 0)


@pytest.mark.parametrize("seed", range(4))
def test_fewest_sites_for_a_target(seed):
    cover, weights, near = instance(seed)
    target = 0.8
    need = target * weights.sum()
    fewest = next(
        k
        for k in range(1, cover.n_sites + 1)
        if any(
            weights[near[:, list(c)].any(axis=1)].sum() >= need - 1e-9
            for c in itertools.combinations(range(cover.n_sites), k)
        )
    )
    everyone, no_one = np.ones(cover.n_sites, dtype=bool), np.zeros(cover.n_sites, dtype=bool)
    solution = solve(cover, weights, everyone, no_one, target=target, gap=0.0)
    assert solution.optimal and len(solution.chosen) == fewest == solution.bound
    assert covered(cover, weights, solution.chosen) >= need - 1e-9
    hurried = solve(cover, weights, everyone, no_one, target=target, gap=0.0, time_limit=1e-9)
    assert 1 <= hurried.bound <= fewest <= len(hurried.chosen)  # a lower bound, and stated
    assert len(hurried.chosen) * (1 - hurried.gap) <= hurried.bound + 1e-9
