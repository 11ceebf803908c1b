"""Correlation coefficients (scipy.stats' definitions). A constant input gives nan, as scipy
returns (scipy also warns; these functions stay silent so training loops stay quiet)."""

from __future__ import annotations

import numpy as np

from ._ranks import count_inversions, rankdata
from ._validation import vector_pair


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2:
        raise ValueError("correlation needs at least two samples")
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    xm = x - x.mean()
    ym = y - y.mean()
    # Scale by the largest magnitude first so huge inputs cannot overflow the norms.
    xm = xm / np.max(np.abs(xm))
    ym = ym / np.max(np.abs(ym))
    r = np.dot(xm / np.linalg.norm(xm), ym / np.linalg.norm(ym))
    return float(np.clip(r, -1.0, 1.0))


def pearson(x, y) -> float:
    """Pearson's linear correlation coefficient r (nan when an input is constant)."""
    return _pearson(*vector_pair(x, y))


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's r on average ranks (ties share their mean rank)."""
    a, b = vector_pair(x, y)
    return _pearson(rankdata(a), rankdata(b))


def _tied_pairs(dense_ranks: np.ndarray) -> int:
    counts = np.bincount(dense_ranks).astype(np.int64)
    return int(np.sum(counts * (counts - 1) // 2))


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (adjusts for ties in either input), in O(n log² n).

    nan when either input is constant. Concordant minus discordant pairs are counted as
    total - ties_x - ties_y + joint_ties - 2·discordant, with discordant pairs counted as the
    inversions of y after sorting by (x, y).
    """
    a, b = vector_pair(x, y)
    n = a.size
    # Dense ranks of y, then order by x (stable, so ties in x stay sorted by y).
    order = np.argsort(b, kind="mergesort")
    a, b = a[order], b[order]
    b_dense = np.cumsum(np.r_[True, b[1:] != b[:-1]])
    order = np.argsort(a, kind="mergesort")
    a, b_dense = a[order], b_dense[order]
    a_dense = np.cumsum(np.r_[True, a[1:] != a[:-1]])

    # Position of each element in a stable sort by y: equal y never counts as discordant.
    y_rank = np.empty(n, dtype=np.int64)
    y_rank[np.argsort(b_dense, kind="mergesort")] = np.arange(n)
    discordant = count_inversions(y_rank)

    boundaries = np.r_[True, (a_dense[1:] != a_dense[:-1]) | (b_dense[1:] != b_dense[:-1]), True]
    run_lengths = np.diff(np.nonzero(boundaries)[0]).astype(np.int64)
    joint_ties = int(np.sum(run_lengths * (run_lengths - 1) // 2))
    x_ties, y_ties = _tied_pairs(a_dense), _tied_pairs(b_dense)
    total = n * (n - 1) // 2
    if x_ties == total or y_ties == total:
        return float("nan")
    difference = total - x_ties - y_ties + joint_ties - 2 * discordant
    tau = difference / np.sqrt(total - x_ties) / np.sqrt(total - y_ties)
    return float(np.clip(tau, -1.0, 1.0))
