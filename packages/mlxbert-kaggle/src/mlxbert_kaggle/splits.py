"""Cross-validation folds with scikit-learn's splitters.

Stratified by class (or by quantile bins of a regression target) when possible, grouped by a
column when asked (no group is split across folds), plain K-fold otherwise. Folds are a
function of the data and the seed only, so a resumed run sees exactly the same folds.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from .errors import InputError


def make_folds(
    n_rows: int,
    n_folds: int,
    *,
    stratify: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Fold number (0..K-1) of every row.

    ``stratify``: class ids or bins to balance across folds (None: not stratified);
    ``groups``: rows with the same group stay in one fold.
    """
    if n_folds < 2:
        raise InputError(f"--folds must be at least 2 for cross-validation, got {n_folds}")
    if n_rows < n_folds:
        raise InputError(f"{n_rows} rows cannot be split into {n_folds} folds")
    index = np.arange(n_rows)
    if stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        if counts.min() < n_folds:
            stratify = None  # a class rarer than the fold count cannot be spread: plain K-fold
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise InputError(f"{n_groups} groups cannot be split into {n_folds} folds")
        if stratify is not None:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            parts = splitter.split(index, stratify, groups)
        else:
            # GroupKFold has no shuffling before scikit-learn 1.6: permute the groups instead.
            rng = np.random.default_rng(seed)
            names, codes = np.unique(groups, return_inverse=True)
            shuffled = rng.permutation(len(names))[codes]
            parts = GroupKFold(n_splits=n_folds).split(index, groups=shuffled)
    elif stratify is not None:
        parts = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(
            index, stratify
        )
    else:
        parts = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index)
    folds = np.full(n_rows, -1, dtype=np.int64)
    for k, (_, valid) in enumerate(parts):
        folds[valid] = k
    assert (folds >= 0).all()
    return folds


def holdout_split(
    n_rows: int, fraction: float, *, stratify: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Boolean mask of validation rows (``fraction`` of them; stratified when possible)."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"--valid-fraction must be in (0, 1), got {fraction}")
    index = np.arange(n_rows)
    if stratify is not None and np.unique(stratify, return_counts=True)[1].min() < 2:
        stratify = None
    _, valid = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    mask = np.zeros(n_rows, dtype=bool)
    mask[valid] = True
    return mask


__all__ = ["holdout_split", "make_folds"]
