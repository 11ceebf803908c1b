"""Average ranks and inversion counts (the building blocks of AUC, Spearman and Kendall)."""

from __future__ import annotations

import numpy as np


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (scipy's ``method="average"``)."""
    values = np.asarray(values)
    n = values.shape[0]
    sorter = np.argsort(values, kind="mergesort")
    inverse = np.empty(n, dtype=np.intp)
    inverse[sorter] = np.arange(n, dtype=np.intp)
    ordered = values[sorter]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(starts)[inverse]
    bounds = np.r_[np.nonzero(starts)[0], n]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def count_inversions(ranks: np.ndarray) -> int:
    """Number of pairs i < j with ranks[i] > ranks[j], for a permutation of 0..n-1.

    A vectorised bottom-up merge sort: at each level the cross-block inversions of every
    pair of sorted blocks are counted at once with one ``searchsorted`` on block-offset
    values, so the cost is O(n log² n) in numpy instead of a Python-level loop.
    """
    n = ranks.shape[0]
    size = 1
    while size < n:
        size *= 2
    # Padding with values larger than all ranks, in increasing order, adds no inversion.
    values = np.concatenate([ranks.astype(np.int64), np.arange(n, size, dtype=np.int64)])
    inversions = 0
    block = 1
    while block < size:
        pairs = values.reshape(-1, 2, block)
        n_pairs = pairs.shape[0]
        offsets = (np.arange(n_pairs, dtype=np.int64) * size)[:, None]
        left = (pairs[:, 0, :] + offsets).ravel()
        right = pairs[:, 1, :] + offsets
        first_greater = np.searchsorted(left, right.ravel(), side="right").reshape(right.shape)
        block_end = ((np.arange(n_pairs, dtype=np.int64) + 1) * block)[:, None]
        inversions += int(np.sum(block_end - first_greater))
        values = np.sort(pairs.reshape(n_pairs, 2 * block), axis=1).ravel()
        block *= 2
    return inversions
