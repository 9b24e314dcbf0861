"""Maximal covering (MCLP) and set cover with a target, solved exactly with HiGHS.

The coverage relation arrives as sparse pairs (demand index, site index): never a dense
demand × site matrix. Before the model is built, demand already covered by the fixed
sites, demand no candidate reaches and demand of zero weight drop out, and demand points
reached by exactly the same candidates merge into one row of summed weight (at 100 m most
points are reached by one candidate or none, so this shrinks the model many times).
"""

import time
from dataclasses import dataclass

import highspy
import numpy as np


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
    optimal: bool
    gap: float
    seconds: float
    target_reached: bool | None = None  # set cover only


@dataclass(frozen=True)
class Rows:
    """Merged demand rows: their weights and candidate lists (CSR), over the candidates
    that reach any of them, numbered 0..k-1 (``used`` holds their site indices)."""

    weight: np.ndarray
    indptr: np.ndarray
    index: np.ndarray
    used: np.ndarray

    @property
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


def _run(
    rows: Rows, *, p: int | None, need: float | None, time_limit: float
) -> tuple[np.ndarray, bool, float]:
    """Columns: x (one per candidate, binary) then y (one per merged row, 0..1).
    Rows: y_r - sum(x over the row's candidates) <= 0, then the budget row: sum(x) <= p
    (maximise covered weight) or sum(w y) >= need (minimise sites)."""
    n_x, n_y = len(rows.used), len(rows.weight)
    row_weight, indptr, index = rows.weight, rows.indptr, rows.index
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    # HiGHS's presolve removes next to nothing from these models and took longer than
    # the solve itself (1.4 s against 0.1 s at 100 m; over a minute at 500 m).
    h.setOptionValue("presolve", "off")
    h.setOptionValue("mip_rel_gap", 0.0)  # exact: the proven optimum, or a stated gap
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
    # Start from the greedy choice, so that a time limit returns at least that.
    greedy = _greedy(rows, p=p, need=need)
    start = np.zeros(n_x + n_y)
    start[greedy] = 1.0
    start[n_x + rows.row_of_pair[start[index] > 0]] = 1.0
    solution = highspy.HighsSolution()
    solution.col_value = list(start)
    solution.value_valid = True
    h.setSolution(solution)
    h.run()
    status = h.getModelStatus()
    found = h.getSolution()
    if not found.value_valid:
        return greedy, False, float("inf")
    x = np.asarray(found.col_value[:n_x]) > 0.5
    gap = float(h.getInfo().mip_gap)
    return np.flatnonzero(x), status == highspy.HighsModelStatus.kOptimal, gap


def _greedy(rows: Rows, *, p: int | None, need: float | None) -> np.ndarray:
    """Candidates one at a time, each adding the most weight not yet covered, until p are
    chosen or ``need`` is covered: the exact solver's first solution."""
    n_x, rows_of, index = len(rows.used), rows.row_of_pair, rows.index
    covered = np.zeros(len(rows.weight), dtype=bool)
    chosen: list[int] = []
    total = 0.0
    while len(chosen) < (p if p is not None else n_x) and (need is None or total < need):
        open_pairs = ~covered[rows_of]
        gain = np.bincount(
            index[open_pairs], weights=rows.weight[rows_of[open_pairs]], minlength=n_x
        )
        best = int(np.argmax(gain))
        if gain[best] <= 0:
            break
        chosen.append(best)
        total += gain[best]
        covered[rows_of[index == best]] = True
    return np.asarray(chosen, dtype=np.int64)


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
) -> Solution:
    """Choose among ``candidates`` (a mask over sites), with the ``fixed`` sites (a mask)
    always open: up to ``p`` sites covering the most weight, or the fewest reaching the
    share ``target`` of all weight (as much as can be reached when that is less)."""
    assert (p is None) != (target is None)
    started = time.perf_counter()
    already = cover.covered(fixed)
    open_rows = ~already & (weights > 0)
    rows = _rows(cover, weights, open_rows, candidates)
    target_reached, need = None, None
    if target is not None:
        need = target * weights.sum() - weights[already].sum()
        reachable = rows.weight.sum()
        target_reached = bool(need <= reachable * (1 + 1e-12))
        need = min(need, reachable)
    if len(rows.weight) == 0 or p == 0 or (need is not None and need <= 0):
        picked, optimal, gap = np.empty(0, dtype=np.int64), True, 0.0
    else:
        picked, optimal, gap = _run(rows, p=p, need=need, time_limit=time_limit)
    order, gains = rank(cover, weights, rows.used[picked], already)
    return Solution(order, gains, optimal, gap, time.perf_counter() - started, target_reached)
