"""What is being predicted: the task inferred from the target column(s), the label set, and
the conversions between table values and what a head trains on.

Inference (``task="auto"``):

* one column and ``label_sep`` given -> ``multilabel`` (labels split on the separator);
* several columns, all 0/1 -> ``multilabel`` (one label per column); all numeric ->
  multi-target ``regression``;
* one column with two distinct values -> ``binary``;
* text values, or integers with few distinct values (<= 20 and <= half the rows) ->
  ``multiclass``;
* other numbers -> ``regression``.

``ordinal`` is never inferred (the order must be meant): ask for it with ``task="ordinal"``;
the classes are ordered by value (numbers numerically).

Rows whose target is missing are dropped and counted (:meth:`TargetSpec.clean`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .tables import require_columns

TASKS = ("auto", "binary", "multiclass", "multilabel", "regression", "ordinal")
TARGET_TRANSFORMS = (None, "log1p")
MAX_CLASSES_AUTO = 20


def label_text(value: Any) -> str:
    """A label as text: ``1`` rather than ``1.0`` for whole numbers read as floats."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value).strip()


def _sort_key(values: Sequence[str]) -> list[Any]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _is_zero_one(series: pd.Series) -> bool:
    values = series.dropna()
    return pd.api.types.is_numeric_dtype(values) and set(np.unique(values)) <= {0, 1}


@dataclass
class TargetSpec:
    """The prediction task of a table.

    Attributes:
        columns: target column(s).
        task: ``binary``, ``multiclass``, ``multilabel``, ``regression`` or ``ordinal``.
        labels: class names (binary: ``[negative, positive]``); multilabel: label names.
        label_sep: separator of a delimited multilabel column (None: one 0/1 column per label).
        transform: target transform for regression (``log1p``: train on log(1 + y), predict
            expm1 — the RMSLE set-up).
    """

    columns: list[str]
    task: str
    labels: list[str] | None = None
    label_sep: str | None = None
    transform: str | None = None
    dropped_rows: int = field(default=0, compare=False)

    # ------------------------------------------------------------------ inference
    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        columns: Sequence[str],
        *,
        task: str = "auto",
        label_sep: str | None = None,
        transform: str | None = None,
    ) -> TargetSpec:
        """Infer (or check) the task of ``columns`` in ``frame`` (see the module doc)."""
        columns = [str(c) for c in columns]
        if not columns:
            raise InputError("give at least one target column (--target COL)")
        require_columns(frame, columns, frame.attrs.get("source", "the training table"))
        task = (task or "auto").lower()
        if task not in TASKS:
            raise InputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        if transform not in TARGET_TRANSFORMS:
            raise InputError(f"unknown target transform {transform!r}; use log1p or none")
        if transform is not None and task == "auto":
            task = "regression"  # a target transform only makes sense for values
        data = frame[columns].dropna(how="any")
        if len(data) == 0:
            raise InputError(f"every value of the target column(s) {columns} is missing")
        if len(columns) > 1:
            spec = cls._infer_multi(data, columns, task, label_sep)
        else:
            spec = cls._infer_single(data[columns[0]], columns[0], task, label_sep)
        if transform is not None:
            if spec.task != "regression":
                raise InputError(f"target transform {transform} needs a regression target")
            if (data.to_numpy(dtype=np.float64) <= -1).any():
                raise InputError("log1p needs target values > -1")
            spec.transform = transform
        return spec

    @classmethod
    def _infer_multi(cls, data: pd.DataFrame, columns: list[str], task: str, sep: str | None):
        if sep is not None:
            raise InputError("--label-sep applies to one delimited target column, not several")
        zero_one = all(_is_zero_one(data[c]) for c in columns)
        numeric = all(pd.api.types.is_numeric_dtype(data[c]) for c in columns)
        if task in ("auto", "multilabel") and zero_one:
            return cls(columns, "multilabel", labels=list(columns))
        if task in ("auto", "regression") and numeric:
            return cls(columns, "regression")
        raise InputError(
            f"several target columns {columns} work as multilabel (all 0/1) or multi-target "
            f"regression (all numeric); these are neither for task {task!r}"
        )

    @classmethod
    def _infer_single(cls, values: pd.Series, column: str, task: str, sep: str | None):
        numeric = pd.api.types.is_numeric_dtype(values)
        if task == "multilabel" or (task == "auto" and sep is not None):
            if sep is None:
                raise InputError("a single multilabel column needs --label-sep (e.g. ',' or '|')")
            names = sorted({p for v in values for p in _split(v, sep)})
            if not names:
                raise InputError(f"column {column!r} holds no labels separated by {sep!r}")
            return cls([column], "multilabel", labels=names, label_sep=sep)
        distinct = _sort_key(list(dict.fromkeys(label_text(v) for v in values)))
        if task == "auto":
            if len(distinct) == 2:
                task = "binary"
            elif not numeric:
                task = "multiclass"
            else:
                whole = np.all(np.mod(values.to_numpy(dtype=np.float64), 1) == 0)
                few = len(distinct) <= MAX_CLASSES_AUTO and len(distinct) <= len(values) / 2
                task = "multiclass" if whole and few else "regression"
        if task == "regression":
            if not numeric:
                raise InputError(f"regression target {column!r} has non-numeric values")
            return cls([column], "regression")
        if len(distinct) < 2:
            raise InputError(
                f"target {column!r} has a single value ({distinct[0]!r}): nothing to learn"
            )
        if task == "binary" and len(distinct) != 2:
            raise InputError(
                f"binary target {column!r} has {len(distinct)} distinct values; use multiclass"
            )
        return cls([column], task, labels=distinct)

    # ------------------------------------------------------------------ conversions
    @property
    def num_outputs(self) -> int:
        """Outputs of the head: classes, labels or regression targets."""
        if self.task == "regression":
            return len(self.columns)
        assert self.labels is not None
        return len(self.labels)

    @property
    def delimited(self) -> bool:
        """A multilabel target written as one ``label_sep``-joined column, where an empty
        cell is the empty set of labels (not a missing target)."""
        return self.task == "multilabel" and self.label_sep is not None

    def clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without rows whose target is missing (their number in ``dropped_rows``);
        an empty cell of a delimited multilabel column is kept: it means no labels."""
        require_columns(frame, self.columns, frame.attrs.get("source", "the table"))
        if self.delimited:
            self.dropped_rows = 0
            out = frame.assign(**{self.columns[0]: frame[self.columns[0]].fillna("")})
            out.attrs = dict(frame.attrs)
            return out
        keep = frame[self.columns].notna().all(axis=1)
        self.dropped_rows = int((~keep).sum())
        out = frame.loc[keep].reset_index(drop=True)
        out.attrs = dict(frame.attrs)
        return out

    def encode(self, frame: pd.DataFrame, where: str = "the table") -> np.ndarray:
        """Training targets: class ids (binary: 0/1 floats), 0/1 matrices, or float values
        (transformed). Unknown labels raise :class:`InputError`."""
        require_columns(frame, self.columns, where)
        if not self.delimited and frame[self.columns].isna().any().any():
            raise InputError(f"{where}: target column(s) {self.columns} have missing values")
        if self.task == "regression":
            values = frame[self.columns].to_numpy(dtype=np.float64)
            if self.transform == "log1p":
                if (values <= -1).any():
                    raise InputError(f"{where}: log1p needs target values > -1")
                values = np.log1p(values)
            return values.astype(np.float32)
        assert self.labels is not None
        if self.task == "multilabel":
            if self.label_sep is None:
                return frame[self.columns].to_numpy(dtype=np.float32)
            index = {name: i for i, name in enumerate(self.labels)}
            out = np.zeros((len(frame), len(self.labels)), np.float32)
            unseen: set[str] = set()
            for row, value in enumerate(frame[self.columns[0]].fillna("")):
                for part in _split(value, self.label_sep):
                    if part in index:
                        out[row, index[part]] = 1.0
                    else:
                        unseen.add(part)
            if unseen:
                raise _unseen_error(where, self.columns[0], unseen, self.labels)
            return out
        index = {name: i for i, name in enumerate(self.labels)}
        texts = [label_text(v) for v in frame[self.columns[0]]]
        unseen = {t for t in texts if t not in index}
        if unseen:
            raise _unseen_error(where, self.columns[0], unseen, self.labels)
        ids = np.array([index[t] for t in texts], dtype=np.int64)
        return ids.astype(np.float32) if self.task == "binary" else ids.astype(np.int32)

    def stratify_values(self, frame: pd.DataFrame) -> np.ndarray | None:
        """What stratified CV balances: class ids; for regression, quantile bins of the
        (first) target; multilabel: none."""
        if self.task == "multilabel":
            return None
        y = self.encode(frame)
        if self.task == "regression":
            first = y.reshape(len(y), -1)[:, 0]
            bins = min(10, max(2, len(first) // 20))
            edges = np.unique(np.quantile(first, np.linspace(0, 1, bins + 1)[1:-1]))
            return np.digitize(first, edges)
        return y.astype(np.int64)

    def raw_frame(self, raw: np.ndarray) -> pd.DataFrame:
        """Raw predictions as named columns (``proba_<label>`` or ``raw_<target>``)."""
        raw = np.asarray(raw)
        if self.task == "binary":
            return pd.DataFrame({f"proba_{self.labels[1]}": raw.reshape(-1)})
        if self.task == "regression":
            names = [f"raw_{c}" for c in self.columns]
        else:
            names = [f"proba_{n}" for n in self.labels]
        return pd.DataFrame(raw.reshape(len(raw), -1), columns=names)

    def decode(self, raw: np.ndarray, *, threshold: float | np.ndarray = 0.5) -> pd.DataFrame:
        """Predictions in the training table's format, one column per target.

        ``raw``: binary P(positive) (n,); multiclass/ordinal class probabilities (n, C);
        multilabel label probabilities (n, L); regression values on the training scale
        (n, T) (the transform is undone here).
        """
        raw = np.asarray(raw, dtype=np.float64)
        n = raw.shape[0]
        if self.task == "regression":
            values = raw.reshape(n, -1)
            if self.transform == "log1p":
                values = np.expm1(values)
            return pd.DataFrame(values, columns=self.columns)
        assert self.labels is not None
        if self.task == "binary":
            picked = np.where(raw.reshape(-1) >= threshold, 1, 0)
            return pd.DataFrame({self.columns[0]: [self.labels[i] for i in picked]})
        if self.task in ("multiclass", "ordinal"):
            picked = np.argmax(raw.reshape(n, -1), axis=1)
            return pd.DataFrame({self.columns[0]: [self.labels[i] for i in picked]})
        chosen = raw.reshape(n, -1) >= np.asarray(threshold)
        if self.label_sep is None:
            return pd.DataFrame(chosen.astype(np.int64), columns=self.columns)
        joined = [self.label_sep.join(np.asarray(self.labels)[row]) for row in chosen]
        return pd.DataFrame({self.columns[0]: joined})

    def to_dict(self) -> dict[str, Any]:
        # The compared fields define the spec; dropped_rows only reports on one reading.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        return cls(
            columns=list(data["columns"]),
            task=data["task"],
            labels=data.get("labels"),
            label_sep=data.get("label_sep"),
            transform=data.get("transform"),
        )


def _split(value: Any, sep: str) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [p.strip() for p in str(value).split(sep) if p.strip()]


def _unseen_error(where: str, column: str, unseen: set[str], labels: list[str]) -> InputError:
    shown = ", ".join(repr(u) for u in sorted(unseen)[:10])
    return InputError(
        f"{where}: column {column!r} has label(s) not seen in training: {shown}; "
        f"training labels: {', '.join(map(repr, labels))}"
    )


__all__ = ["TASKS", "TargetSpec", "label_text"]
