"""Input checks shared by every metric: clear errors instead of silent broadcasting."""

from __future__ import annotations

import numpy as np

_AVERAGES = ("binary", "macro", "micro", "weighted")


def to_numpy(name: str, values: object) -> np.ndarray:
    """Convert lists, numpy and mlx arrays to numpy, refusing empty input."""
    array = np.asarray(values)
    if array.ndim == 0:
        raise ValueError(f"{name} must be an array of samples, got a scalar ({array!r})")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one sample")
    return array


def check_finite(name: str, array: np.ndarray) -> None:
    """NaN or infinite values make every metric meaningless: say so instead of returning nan."""
    if (np.issubdtype(array.dtype, np.number) or array.dtype == bool) and not np.all(
        np.isfinite(array)
    ):
        raise ValueError(f"{name} contains NaN or infinite values; clean or impute them first")


def check_pair(
    y_true: object, y_pred: object, *, true_name: str = "y_true", pred_name: str = "y_pred"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of arrays that must describe the same samples."""
    a = to_numpy(true_name, y_true)
    b = to_numpy(pred_name, y_pred)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{true_name} has {a.shape[0]} samples but {pred_name} has {b.shape[0]}; "
            "they must describe the same samples"
        )
    check_finite(true_name, a)
    check_finite(pred_name, b)
    return a, b


def squeeze_column(array: np.ndarray) -> np.ndarray:
    """A (n, 1) column is a 1-D target (scikit-learn does the same, with a warning)."""
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    return array


def check_labels(name: str, array: np.ndarray) -> None:
    """Class labels must be discrete: refuse probabilities or regression values."""
    if np.issubdtype(array.dtype, np.floating) and np.any(array != np.round(array)):
        raise ValueError(
            f"{name} contains non-integer values; classification metrics need class labels "
            "(threshold probabilities first, e.g. (p >= 0.5).astype(int))"
        )


def classification_pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (y_true, y_pred, kind) with kind in {"binary", "multiclass", "multilabel"}."""
    a, b = check_pair(y_true, y_pred)
    a, b = squeeze_column(a), squeeze_column(b)
    if a.ndim != b.ndim or (a.ndim == 2 and a.shape != b.shape):
        raise ValueError(
            f"y_true has shape {a.shape} but y_pred has shape {b.shape}; pass label vectors "
            "(n,) or multilabel indicator matrices (n, n_labels) of the same shape"
        )
    if a.ndim > 2:
        raise ValueError(f"labels must be 1-D or 2-D indicator matrices, got shape {a.shape}")
    check_labels("y_true", a)
    check_labels("y_pred", b)
    if a.ndim == 2:
        for name, arr in (("y_true", a), ("y_pred", b)):
            if not np.all(np.isin(arr, (0, 1))):
                raise ValueError(f"{name} is 2-D, so it must be a 0/1 multilabel indicator matrix")
        return a.astype(np.int64), b.astype(np.int64), "multilabel"
    kind = "binary" if np.unique(np.concatenate([a, b])).size <= 2 else "multiclass"
    return a, b, kind


def check_average(average: str, allowed: tuple[str, ...] = _AVERAGES) -> None:
    if average not in allowed:
        raise ValueError(f"unknown average={average!r}; choose one of {', '.join(allowed)}")


def regression_pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    """Return float64 2-D arrays (n, n_outputs); a 1-D target is one output."""
    a, b = check_pair(y_true, y_pred)
    for name, arr in (("y_true", a), ("y_pred", b)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric for a regression metric, got {arr.dtype}")
        if arr.ndim > 2:
            raise ValueError(f"{name} must be 1-D or 2-D (n, n_outputs), got shape {arr.shape}")
    a = a.astype(np.float64).reshape(a.shape[0], -1)
    b = b.astype(np.float64).reshape(b.shape[0], -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"y_true has {a.shape[1]} outputs but y_pred has {b.shape[1]}; shapes must match"
        )
    return a, b


def vector_pair(x: object, y: object, names: tuple[str, str] = ("x", "y")):
    """Two 1-D float vectors of equal length (for correlations)."""
    a, b = check_pair(x, y, true_name=names[0], pred_name=names[1])
    a, b = squeeze_column(a), squeeze_column(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D, got {a.shape} and {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)
