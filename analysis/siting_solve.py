"""Maximal covering (MCLP) and set cover with a target, with a proven optimality gap.

The coverage relation arrives as sparse pairs (demand index, site index): never a dense
demand × site matrix. Before the model is built, demand already covered by the fixed
sites, demand no candidate reaches and demand of zero weight drop out, and demand points
reached by exactly the same candidates merge into one row of summed weight (at 100 m most
points are reached by one candidate or none, so this shrinks the model many times).

MCLP: a greedy choice improved by interchange gives the sites, a Lagrangian bound proves
how far they can be from the optimum; HiGHS's branch and bound runs only while that gap
is above the tolerance (``gap``, 0.5% by default). Wide coverage (each demand point in
reach of tens of candidates) has a weak LP relaxation: the bound, and so the gap that can
be proven in seconds, stays at a few percent there, and the result says so. Set cover:
HiGHS from the greedy choice.
"""

import time
from dataclasses import dataclass
from functools import cached_property

import highspy
import numpy as np

DEFAULT_GAP = 0.005  # relative: stop when the sites are proven within 0.5% of the optimum
DENSE_KEYS = 1 << 22  # swap keys (chosen x candidates) summed in place up to this
LAGRANGE_ITERATIONS = 600
LAGRANGE_STEP = 1.0  # the subgradient step's share of the distance to the sites' value
LAGRANGE_PATIENCE = 20  # iterations without a better bound before the step halves
LAGRANGE_DEFLECTION = 0.9  # share of the last direction kept (zig-zags less)
PERTURBATIONS = 100  # rounds of iterated interchange while the gap is above the tolerance
SEED = 112  # of the perturbations: the same sites for the same inputs and time


@dataclass(frozen=True)
class Coverage:
    """Which sites reach which demand: parallel arrays of pairs, ``demand`` and ``site``."""

    n_demand: int
    n_sites: int
    demand: np.ndarray
    site: np.ndarray

    def covered(self, open_sites: np.ndarray) -> np.ndarray:
        """Demand reached by at least one of the open sites (a boolean mask over sites)."""
        mask = np.zeros(self.n_demand, dtype=bool)
        mask[self.demand[open_sites[self.site]]] = True
        return mask

    def reachable(self) -> np.ndarray:
        return self.covered(np.ones(self.n_sites, dtype=bool))


@dataclass(frozen=True)
class Solution:
    chosen: np.ndarray  # site indices, ranked by marginal gain (zero-gain sites dropped)
    gains: np.ndarray  # weight each adds, in that order
    optimal: bool  # proven
    gap: float  # proven relative gap: |bound - found| / found, 0 when optimal
    seconds: float
    # p: the most weight any p new sites (with the fixed) can cover; target: fewest sites
    bound: float
    target_reached: bool | None = None  # set cover only


@dataclass(frozen=True)
class Rows:
    """Merged demand rows: their weights and candidate lists (CSR), over the candidates
    that reach any of them, numbered 0..k-1 (``used`` holds their site indices)."""

    weight: np.ndarray
    indptr: np.ndarray
    index: np.ndarray
    used: np.ndarray

    @cached_property
    def row_of_pair(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.weight)), np.diff(self.indptr))


def _rows(
    cover: Coverage, weights: np.ndarray, open_rows: np.ndarray, candidates: np.ndarray
) -> Rows:
    keep = open_rows[cover.demand] & candidates[cover.site]
    demand, site = cover.demand[keep], cover.site[keep]
    used, column = np.unique(site, return_inverse=True)
    if len(site) == 0:
        return Rows(np.empty(0), np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int32), used)
    order = np.lexsort((column, demand))
    demand, column = demand[order], column[order]
    starts = np.flatnonzero(np.r_[True, np.diff(demand) != 0])
    groups: dict[bytes, int] = {}
    row_of = np.empty(len(starts), dtype=np.int64)
    bounds = np.r_[starts, len(demand)]
    for n in range(len(starts)):
        key = column[bounds[n] : bounds[n + 1]].tobytes()
        row_of[n] = groups.setdefault(key, len(groups))
    row_weight = np.bincount(row_of, weights=weights[demand[starts]], minlength=len(groups))
    first = np.zeros(len(groups), dtype=np.int64)
    first[row_of[::-1]] = np.arange(len(starts))[::-1]  # one demand point per merged row
    lengths = bounds[first + 1] - bounds[first]
    indptr = np.r_[0, np.cumsum(lengths)]
    index = np.concatenate([column[bounds[f] : bounds[f + 1]] for f in first]) if len(first) else []
    return Rows(row_weight, indptr, np.asarray(index, dtype=np.int32), used)


def _highs(
    rows: Rows, start: np.ndarray, *, p: int | None, need: float | None, gap: float, deadline: float
) -> tuple[np.ndarray, float]:
    """The exact model, from the ``start`` sites, stopped at the relative ``gap`` or at the
    ``deadline``: the best sites HiGHS has then and its bound (for p: the most weight that
    p sites can cover; for a target: the fewest sites, a lower bound).
    Columns: x (one per candidate, binary) then y (one per merged row, 0..1).
    Rows: y_r - sum(x over the row's candidates) <= 0, then the budget row: sum(x) <= p
    (maximise covered weight) or sum(w y) >= need (minimise sites)."""
    n_x, n_y = len(rows.used), len(rows.weight)
    row_weight, indptr, index = rows.weight, rows.indptr, rows.index
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    # HiGHS's presolve removes next to nothing from these models and took longer than
    # the solve itself (1.4 s against 0.1 s at 100 m; over a minute at 500 m).
    h.setOptionValue("presolve", "off")
    h.setOptionValue("mip_rel_gap", float(gap))
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_x + n_y, n_y + 1
    maximise = p is not None
    lp.col_cost_ = (
        np.r_[np.zeros(n_x), row_weight] if maximise else np.r_[np.ones(n_x), np.zeros(n_y)]
    )
    lp.col_lower_ = np.zeros(n_x + n_y)
    lp.col_upper_ = np.ones(n_x + n_y)
    lp.sense_ = highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize
    lengths = np.diff(indptr)
    starts = np.r_[0, np.cumsum(lengths + 1)]  # each coverage row: its y, then its x's
    values = np.empty(starts[-1])
    columns = np.empty(starts[-1], dtype=np.int32)
    heads = starts[:-1]
    columns[heads], values[heads] = n_x + np.arange(n_y), 1.0
    body = np.ones(starts[-1], dtype=bool)
    body[heads] = False
    columns[body], values[body] = index, -1.0
    if maximise:
        last_cols, last_vals = np.arange(n_x), np.ones(n_x)
        lp.row_lower_ = np.r_[np.full(n_y, -highspy.kHighsInf), -highspy.kHighsInf]
        lp.row_upper_ = np.r_[np.zeros(n_y), float(p)]
    else:
        last_cols, last_vals = n_x + np.arange(n_y), row_weight
        lp.row_lower_ = np.r_[np.full(n_y, -highspy.kHighsInf), float(need)]
        lp.row_upper_ = np.r_[np.zeros(n_y), highspy.kHighsInf]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.r_[starts, starts[-1] + len(last_cols)].astype(np.int32)
    lp.a_matrix_.index_ = np.r_[columns, last_cols].astype(np.int32)
    lp.a_matrix_.value_ = np.r_[values, last_vals]
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_x + [
        highspy.HighsVarType.kContinuous
    ] * n_y
    h.passModel(lp)
    # From the heuristic's sites, so that a time limit returns at least those.
    x = np.zeros(n_x, dtype=bool)
    x[start] = True
    initial = np.r_[x, _counts(rows, x) > 0].astype(float)
    solution = highspy.HighsSolution()
    solution.col_value = list(initial)
    solution.value_valid = True
    h.setSolution(solution)
    h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.01))  # model built
    h.run()
    info, found = h.getInfo(), h.getSolution()
    if found.value_valid:
        x = np.asarray(found.col_value[:n_x]) > 0.5
    bound = float(info.mip_dual_bound)
    if not np.isfinite(bound):  # none found in time
        bound = float(row_weight.sum()) if maximise else 0.0
    return np.flatnonzero(x), bound


def _counts(rows: Rows, open_sites: np.ndarray) -> np.ndarray:
    """How many open sites reach each merged row."""
    return np.bincount(rows.row_of_pair[open_sites[rows.index]], minlength=len(rows.weight))


def _rows_of_sites(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """The coverage the other way round (CSC): each candidate's merged rows."""
    order = np.argsort(rows.index, kind="stable")
    counts = np.bincount(rows.index, minlength=len(rows.used))
    return np.r_[0, np.cumsum(counts)], rows.row_of_pair[order]


def _segments(indptr: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The positions of the ``which`` segments of a CSR pointer array, end to end."""
    lengths = indptr[which + 1] - indptr[which]
    positions = np.repeat(indptr[which] - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    return positions + np.arange(len(positions))


def _greedy(rows: Rows, *, p: int | None, need: float | None) -> np.ndarray:
    """Candidates one at a time, each adding the most weight not yet covered, until p are
    chosen or ``need`` is covered. Each site's gain is kept up to date by subtracting the
    rows that the last choice covered, rather than recounted over every pair."""
    n_x, index, weight = len(rows.used), rows.index, rows.weight
    site_ptr, site_rows = _rows_of_sites(rows)
    gain = np.bincount(index, weights=weight[rows.row_of_pair], minlength=n_x)
    covered = np.zeros(len(weight), dtype=bool)
    chosen: list[int] = []
    total = 0.0
    while len(chosen) < (p if p is not None else n_x) and (need is None or total < need):
        best = int(np.argmax(gain))
        if gain[best] <= 0:
            break
        chosen.append(best)
        total += gain[best]
        new = site_rows[site_ptr[best] : site_ptr[best + 1]]
        new = new[~covered[new]]
        covered[new] = True
        pairs = _segments(rows.indptr, new)
        gain -= np.bincount(index[pairs], weights=weight[rows.row_of_pair[pairs]], minlength=n_x)
    return np.asarray(chosen, dtype=np.int64)


def _interchange(rows: Rows, chosen: np.ndarray, deadline: float) -> np.ndarray:
    """Teitz and Bart's interchange: while some swap of a chosen site for another adds
    weight, make the best one. A swap of j for k adds what k reaches that nothing covers,
    less what j alone covers, plus what j alone covers that k reaches too; that last
    term is counted only over the pairs that share rows, so no p x candidates matrix."""
    n_x, n_y, index, weight = len(rows.used), len(rows.weight), rows.index, rows.weight
    row = rows.row_of_pair
    is_open = np.zeros(n_x, dtype=bool)
    is_open[chosen] = True
    least = 1e-9 * max(float(weight.sum()), 1.0)
    while time.perf_counter() < deadline:
        on = is_open[index]
        count = _counts(rows, is_open)[row]
        bare, sole = count == 0, count == 1
        gain = np.bincount(index[bare], weights=weight[row[bare]], minlength=n_x)
        gain = np.where(is_open, -np.inf, gain)  # (bincount of nothing is integer)
        mine = sole & on
        loss = np.bincount(index[mine], weights=weight[row[mine]], minlength=n_x)
        opened = np.flatnonzero(is_open)
        slot = np.zeros(n_x, dtype=np.int64)
        slot[opened] = np.arange(len(opened))
        owner = np.zeros(n_y, dtype=np.int64)
        owner[row[mine]] = slot[index[mine]]
        shared = sole & ~on
        keys, kept = _sums(owner[row[shared]] * n_x + index[shared], weight[row[shared]],
                           len(opened) * n_x)  # fmt: skip
        out, into = opened[keys // n_x], keys % n_x
        delta = gain[into] + kept - loss[out]
        j, k = opened[np.argmin(loss[opened])], int(np.argmax(gain))  # the best unshared swap
        best = float(gain[k] - loss[j])
        if len(delta) and delta.max() > best:
            n = int(np.argmax(delta))
            j, k, best = out[n], into[n], float(delta[n])
        if best <= least:
            break
        is_open[j], is_open[k] = False, True
    return np.flatnonzero(is_open)


def _sums(keys: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (below ``size``) and the sum of the values of each: counted in
    place when the key space is small, sorted otherwise."""
    if size <= DENSE_KEYS:
        sums = np.bincount(keys, weights=values, minlength=size)
        keys = np.flatnonzero(sums)
        return keys, sums[keys]
    keys, where = np.unique(keys, return_inverse=True)
    return keys, np.bincount(where, weights=values, minlength=len(keys))


def _bound(rows: Rows, p: int, value: float, enough: float, deadline: float) -> float:
    """An upper bound on the weight p sites can cover: the Lagrangian relaxation of the
    coverage rows. For any multipliers 0 <= l_r <= w_r, sum(w_r - l_r) plus the p largest
    site prices (sum of l_r over each site's rows) bounds every choice of p sites; the
    multipliers are lowered by deflected subgradient steps (Camerini, Fratta and
    Maffioli) until the bound is ``enough``, stalls, or time is up. Its best is the LP
    relaxation's optimum: on weakly relaxed instances the gap it proves stays large."""
    n_x, n_y, weight = len(rows.used), len(rows.weight), rows.weight
    if p >= n_x:
        return float(weight.sum())
    site_ptr, site_rows = _rows_of_sites(rows)  # every candidate here reaches some row
    price = weight / 2
    best, step, stall = np.inf, LAGRANGE_STEP, 0
    direction = np.zeros_like(weight)
    for _ in range(LAGRANGE_ITERATIONS):
        site = np.add.reduceat(price[site_rows], site_ptr[:-1])
        top = np.argpartition(-site, p)[:p]
        bound = float(np.maximum(weight - price, 0).sum() + site[top].sum())
        if bound < best:
            best, stall = bound, 0
        else:
            stall += 1
            if stall == LAGRANGE_PATIENCE:
                step, stall = step / 2, 0
        if best <= enough or step < 1e-4 or time.perf_counter() > deadline:
            break
        slope = np.bincount(site_rows[_segments(site_ptr, top)], minlength=n_y) - (weight > price)
        direction = slope + LAGRANGE_DEFLECTION * direction
        direction[((price <= 0) & (direction > 0)) | ((price >= weight) & (direction < 0))] = 0
        norm = float(np.square(direction).sum())  # not @: BLAS threads cost more here
        if norm == 0:
            break
        price = np.clip(price - step * (bound - value) / norm * direction, 0, weight)
    return best


def _maximal(rows: Rows, p: int, gap: float, deadline: float) -> tuple[np.ndarray, float, float]:
    """p sites covering the most weight: greedy, then interchange, then the Lagrangian
    bound; while the gap is above ``gap``, iterated interchange from perturbed choices
    and then HiGHS's branch and bound, until the deadline."""
    chosen = _interchange(rows, _greedy(rows, p=p, need=None), deadline)
    value = _value(rows, chosen)
    integral = bool(np.all(rows.weight == np.round(rows.weight)))
    # The bound is cheap: it goes on to prove optimality where it can, past the tolerance.
    bound = _bound(rows, p, value, _enough(value, 0.0, integral), deadline)
    if bound > _enough(value, gap, integral):
        chosen, value = _perturbed(rows, chosen, value, bound, gap, integral, deadline)
    if bound > _enough(value, gap, integral) and time.perf_counter() < deadline:
        picked, dual = _highs(rows, chosen, p=p, need=None, gap=gap, deadline=deadline)
        if (found := _value(rows, picked)) > value:
            chosen, value = picked, found
        bound = min(bound, dual)
    if integral:  # every choice covers a whole weight
        bound = float(np.floor(bound + 1e-6))
    return chosen, value, max(bound, value)


def _perturbed(
    rows: Rows,
    chosen: np.ndarray,
    value: float,
    bound: float,
    gap: float,
    integral: bool,
    deadline: float,
) -> tuple[np.ndarray, float]:
    """Iterated local search: a tenth of the sites swapped for random others, then
    interchange again, kept when better; for PERTURBATIONS rounds, until the gap is
    proven or the deadline. At 500 m it adds 0.4% in 2 s over one interchange."""
    rng = np.random.default_rng(SEED)
    others = np.setdiff1d(np.arange(len(rows.used)), chosen)
    size = min(max(1, len(chosen) // 10), len(others))
    for _ in range(PERTURBATIONS if size else 0):
        if time.perf_counter() >= deadline or bound <= _enough(value, gap, integral):
            break
        trial = chosen.copy()
        trial[rng.choice(len(trial), size, replace=False)] = rng.choice(others, size, replace=False)
        trial = _interchange(rows, trial, deadline)
        if (found := _value(rows, trial)) > value:
            chosen, value = trial, found
            others = np.setdiff1d(np.arange(len(rows.used)), chosen)
    return chosen, value


def _fewest(rows: Rows, need: float) -> float:
    """A lower bound on the sites reaching ``need``: however they overlap, k sites cover
    at most the k largest weights that single sites reach."""
    alone = np.sort(np.bincount(rows.index, weights=rows.weight[rows.row_of_pair]))[::-1]
    return float(np.searchsorted(np.cumsum(alone), need * (1 - 1e-12)) + 1)


def _value(rows: Rows, sites: np.ndarray) -> float:
    """The weight of the merged rows that the sites reach."""
    is_open = np.zeros(len(rows.used), dtype=bool)
    is_open[sites] = True
    return float(rows.weight[_counts(rows, is_open) > 0].sum())


def _enough(value: float, gap: float, integral: bool) -> float:
    """The highest bound that proves ``value`` within the relative ``gap``."""
    exact = value + (1 - 2e-6 if integral else 1e-9 * max(value, 1.0))
    return max(value * (1 + gap), exact)


def rank(
    cover: Coverage, weights: np.ndarray, chosen: np.ndarray, already: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The chosen sites in greedy order of the weight each adds to what is covered
    already; sites that add nothing are dropped."""
    mine = np.isin(cover.site, chosen)
    demand, site = cover.demand[mine], cover.site[mine]
    covered = already.copy()
    order, gains = [], []
    left = list(chosen)
    while left:
        open_pairs = ~covered[demand]
        gain = np.bincount(
            site[open_pairs], weights=weights[demand[open_pairs]], minlength=cover.n_sites
        )
        best = max(left, key=lambda s: (gain[s], -s))
        if gain[best] <= 0:
            break
        order.append(best)
        gains.append(gain[best])
        covered[demand[site == best]] = True
        left.remove(best)
    return np.asarray(order, dtype=np.int64), np.asarray(gains, dtype=float)


def solve(
    cover: Coverage,
    weights: np.ndarray,
    candidates: np.ndarray,
    fixed: np.ndarray,
    *,
    p: int | None = None,
    target: float | None = None,
    time_limit: float = 60.0,
    gap: float = DEFAULT_GAP,
) -> Solution:
    """Choose among ``candidates`` (a mask over sites), with the ``fixed`` sites (a mask)
    always open: up to ``p`` sites covering the most weight, or the fewest reaching the
    share ``target`` of all weight (as much as can be reached when that is less). Stops
    once the sites are proven within the relative ``gap`` of the optimum (0: optimal), or
    after ``time_limit`` seconds with the gap proven by then."""
    assert (p is None) != (target is None)
    started = time.perf_counter()
    deadline = started + time_limit
    already = cover.covered(fixed)
    open_rows = ~already & (weights > 0)
    rows = _rows(cover, weights, open_rows, candidates)
    target_reached, need = None, None
    if target is not None:
        need = target * weights.sum() - weights[already].sum()
        reachable = rows.weight.sum()
        target_reached = bool(need <= reachable * (1 + 1e-12))
        need = min(need, reachable)
    before = float(weights[already].sum())
    if len(rows.weight) == 0 or p == 0 or (need is not None and need <= 0):
        picked, found, bound = np.empty(0, dtype=np.int64), 0.0, 0.0
    elif p is not None:
        picked, found, bound = _maximal(rows, p, gap, deadline)
    else:
        start = _greedy(rows, p=None, need=need)
        picked, bound = _highs(rows, start, p=None, need=need, gap=gap, deadline=deadline)
        bound = max(float(np.ceil(bound - 1e-6)), _fewest(rows, need))  # whole sites
        found = float(len(picked))
    # Relative to what the new sites add (or their number): HiGHS's definition.
    slack = float(abs(bound - found))
    optimal = bool(slack <= 1e-9 * max(found, 1.0))
    relative = 0.0 if optimal else slack / max(found, 1e-12)
    if p is not None:
        bound += before
    order, gains = rank(cover, weights, rows.used[picked], already)
    seconds = time.perf_counter() - started
    return Solution(order, gains, optimal, relative, seconds, bound, target_reached)
