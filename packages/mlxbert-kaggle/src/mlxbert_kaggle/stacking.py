"""Stacking: a level-2 model over the out-of-fold predictions of one or several CV runs.

The meta-model is scikit-learn's: ``LogisticRegression`` for classification (on the runs'
logits -- binary, one model per label for multilabel -- or log-probabilities for multiclass
and ordinal) and ``Ridge`` for regression (on the runs' values). Its score is nested: for
each fold of the first run, a meta-model fitted on the other folds' out-of-fold rows predicts
that fold. Every score here -- each run alone, the plain mean of the runs, the stack -- is
computed as ``train`` computes its CV score (each fold's decision threshold fitted on that
fold's predictions), so they compare like for like, and each run alone reproduces its own
``metrics.json``.

The fitted meta-model is kept as numbers in JSON (no pickle): ``DIR/stack.json`` holds the
runs, the coefficients, the decision threshold and the scores; ``DIR/oof.csv`` the stacked
out-of-fold predictions. ``mlxbert predict --model DIR`` predicts with it: each run's fold
ensemble, then the meta-model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge

from .atomic import read_json, write_json
from .cv import WORK
from .errors import InputError, missing_columns_error
from .outputs import check_output_dir, check_output_file, claimed_dir
from .predicting import load_group, predict_frame, resolve_model_groups
from .progress import Reporter
from .scoring import primary_metric, score
from .submission import align_to_sample, check_unique_ids
from .tables import read_table, write_table
from .targets import TargetSpec
from .thresholds import THRESHOLD_TASKS, fit_thresholds

STACK_FILE = "stack.json"
STACK_VERSION = 1
EPS = 1e-6


def is_stack(path: str | Path) -> bool:
    """Whether ``path`` is a folder ``mlxbert stack`` wrote."""
    return (Path(path) / STACK_FILE).is_file()


# ---------------------------------------------------------------------------- features


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def features(task: str, raws: Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """The meta-model's inputs from each run's raw predictions (multilabel: one matrix per
    label)."""
    n = len(raws[0])
    cols = [np.asarray(r, dtype=np.float64).reshape(n, -1) for r in raws]
    if task == "binary":
        return np.hstack([_logit(c) for c in cols])
    if task in ("multiclass", "ordinal"):
        return np.hstack([np.log(np.clip(c, EPS, 1.0)) for c in cols])
    if task == "multilabel":
        return [np.stack([_logit(c[:, j]) for c in cols], axis=1) for j in range(cols[0].shape[1])]
    return np.hstack(cols)


class MetaModel:
    """The fitted level-2 model as plain numbers: ``predict`` needs numpy only."""

    def __init__(self, task: str, parts: list[dict[str, Any]]):
        self.task = task
        self.parts = parts  # one {"coef", "intercept"} per label (multilabel) or one in all

    @classmethod
    def fit(cls, task: str, x: Any, y: np.ndarray, strength: float, classes: int) -> MetaModel:
        if task == "regression":
            model = Ridge(alpha=strength).fit(x, y.reshape(len(y), -1))
            coef, intercept = np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_)
            return cls(task, [{"coef": coef.tolist(), "intercept": intercept.tolist()}])
        if task == "multilabel":
            truth = y.reshape(len(y), -1).astype(np.int64)
            return cls(task, [_logistic(xj, truth[:, j], strength, 2) for j, xj in enumerate(x)])
        return cls(task, [_logistic(x, y.reshape(-1).astype(np.int64), strength, classes)])

    def predict(self, x: Any) -> np.ndarray:
        """Raw predictions in the form every model folder gives (binary P(1), class /
        label probabilities, values)."""
        if self.task == "multilabel":
            return np.stack([_sigmoid(_linear(xj, p))[:, 0] for xj, p in zip(x, self.parts)], 1)
        z = _linear(x, self.parts[0])
        if self.task == "regression":
            return z
        if self.task == "binary":
            return _sigmoid(z)[:, 0]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "parts": self.parts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetaModel:
        return cls(data["task"], data["parts"])


def _logistic(x: np.ndarray, y: np.ndarray, c: float, n_classes: int) -> dict[str, Any]:
    present = np.unique(y)
    if present.size < 2:  # one class only: a constant model
        coef = np.zeros((1 if n_classes == 2 else n_classes, x.shape[1]))
        intercept = np.full(coef.shape[0], 10.0 if present[0] == 1 else -10.0)
        return {"coef": coef.tolist(), "intercept": intercept.tolist(), "classes": []}
    model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
    coef, intercept = model.coef_, model.intercept_
    if n_classes > 2 and coef.shape[0] != n_classes:  # a class missing from these rows
        full = np.zeros((n_classes, x.shape[1]))
        full_b = np.full(n_classes, -30.0)
        full[model.classes_], full_b[model.classes_] = coef, intercept
        coef, intercept = full, full_b
    return {"coef": coef.tolist(), "intercept": intercept.tolist()}


def _linear(x: np.ndarray, part: dict[str, Any]) -> np.ndarray:
    return np.asarray(x) @ np.asarray(part["coef"]).T + np.asarray(part["intercept"])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# ---------------------------------------------------------------------------- runs


def _run(path: Path) -> dict[str, Any]:
    """A finished CV run: its target, rows' truth, folds and out-of-fold predictions."""
    metrics = read_json(path / "metrics.json")
    if not metrics or metrics.get("mode") != "cv" or not metrics.get("finished"):
        raise InputError(f"--run {path}: not a finished CV run (`mlxbert train --folds K`)")
    folder = path / Path(metrics["models"][0]).parent  # a pseudo-labelled run's last round
    spec = TargetSpec.from_dict(metrics["target"])
    settings = read_json(folder / WORK / "run.json") or {}
    keep = [settings["id_col"]] if settings.get("id_col") else []
    oof_table = read_table(folder / "oof.csv", what="out-of-fold predictions", keep_text=keep)
    return {
        "path": path,
        "spec": spec,
        "metrics": metrics,
        "y": spec.encode(oof_table, str(folder / "oof.csv")),
        "folds": np.asarray(read_json(folder / WORK / "folds.json")),
        "oof": np.load(folder / WORK / "oof.npy"),
        "ids": _ids(oof_table, settings),
    }


def _ids(oof_table: pd.DataFrame, settings: dict[str, Any]) -> list[str]:
    """The rows' ids (the run's --id-col), else their positions."""
    id_col = settings.get("id_col")
    if id_col and id_col in oof_table.columns:
        return oof_table[id_col].astype(str).tolist()
    return [str(i) for i in range(len(oof_table))]


def _same_rows(runs: list[dict[str, Any]]) -> None:
    first = runs[0]
    for r in runs[1:]:
        if (r["spec"].task, r["spec"].columns, r["spec"].labels) != (
            first["spec"].task,
            first["spec"].columns,
            first["spec"].labels,
        ):
            raise InputError(f"--run {r['path']} predicts another target than {first['path']}")
        if len(r["y"]) != len(first["y"]) or not np.array_equal(r["y"], first["y"]):
            raise InputError(
                f"--run {r['path']} was trained on other rows than {first['path']}; stacking "
                "needs out-of-fold predictions of the same rows (same --train and --max-rows)"
            )


def cv_score(spec, y, raw, folds, metric) -> dict[str, float]:
    """Metrics of out-of-fold predictions as ``train`` computes its CV score: each fold cut
    at a threshold fitted on that fold's predictions (binary, multilabel)."""
    if spec.task not in THRESHOLD_TASKS:
        return score(spec, y, raw)
    per_row = np.zeros_like(np.asarray(raw, dtype=np.float64))
    for k in np.unique(folds):
        rows = folds == k
        t = fit_thresholds(spec, y[rows], raw[rows], metric)
        per_row[rows] = 0.5 if t is None else np.asarray(t, dtype=np.float64)
    return score(spec, y, raw, threshold=per_row)


def stack(
    runs: Sequence[str | Path],
    *,
    output: str | Path,
    strength: float = 1.0,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Fit the meta-model over ``runs``' out-of-fold predictions; returns (and writes)
    ``stack.json``'s content. ``strength``: LogisticRegression's ``C`` (inverse
    regularisation) or Ridge's ``alpha``."""
    reporter = reporter or Reporter()
    if not runs:
        raise InputError("give at least one --run (a CV training output folder)")
    if not strength > 0:
        raise InputError(f"--strength must be > 0, got {strength}")
    output = Path(output)
    check_output_dir(output, overwrite=overwrite)
    loaded = [_run(Path(r)) for r in runs]
    _same_rows(loaded)
    first = loaded[0]
    spec, y, folds = first["spec"], first["y"], first["folds"]
    metric = first["metrics"]["metric"] or primary_metric(spec)
    raws = [r["oof"] for r in loaded]
    x = features(spec.task, raws)
    stacked = np.zeros_like(np.asarray(raws[0], dtype=np.float64))
    for k in np.unique(folds):
        fit_rows = folds != k
        part = [xj[fit_rows] for xj in x] if isinstance(x, list) else x[fit_rows]
        meta = MetaModel.fit(spec.task, part, y[fit_rows], strength, spec.num_outputs)
        rows = [xj[~fit_rows] for xj in x] if isinstance(x, list) else x[~fit_rows]
        stacked[~fit_rows] = meta.predict(rows).reshape(stacked[~fit_rows].shape)
    scores = {
        "runs": [cv_score(spec, y, r, folds, metric) for r in raws],
        "mean": cv_score(spec, y, np.mean(raws, axis=0), folds, metric),
        "stack": cv_score(spec, y, stacked, folds, metric),
    }
    meta = MetaModel.fit(spec.task, x, y, strength, spec.num_outputs)
    threshold = fit_thresholds(spec, y, stacked, metric)
    result = {
        "kind": "mlxbert-stack",
        "version": STACK_VERSION,
        "runs": [str(Path(r).resolve()) for r in runs],
        "target": spec.to_dict(),
        "metric": metric,
        "meta": {
            "model": "ridge" if spec.task == "regression" else "logistic",
            "strength": strength,
            **meta.to_dict(),
        },
        "threshold": threshold,
        "score": scores["stack"][metric],
        "scores": scores,
        "rows": len(y),
    }
    with claimed_dir(output, overwrite=overwrite):
        decoded = spec.decode(
            stacked, threshold=0.5 if threshold is None else np.asarray(threshold)
        )
        table = pd.concat(
            [
                pd.DataFrame({"id": first["ids"], "fold": folds + 1}),
                decoded.add_prefix("pred_"),
                spec.raw_frame(stacked),
            ],
            axis=1,
        )
        write_table(table, output / "oof.csv")
        write_json(output / STACK_FILE, result)
    line = ", ".join(f"{s[metric]:.4f}" for s in scores["runs"])
    reporter.log(
        f"CV {metric}: runs {line}; mean of runs {scores['mean'][metric]:.4f}; "
        f"stack {scores['stack'][metric]:.4f}"
    )
    return result


# ---------------------------------------------------------------------------- prediction


def predict_stack(
    path: str | Path, frame: pd.DataFrame, *, reporter: Reporter | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """(decoded predictions, raw predictions) of a stack for a table: each run's fold
    ensemble, then the meta-model."""
    data = read_json(Path(path) / STACK_FILE)
    if not data or data.get("kind") != "mlxbert-stack":
        raise InputError(f"{path} holds no stack.json written by `mlxbert stack`")
    spec = TargetSpec.from_dict(data["target"])
    raws = []
    for run in data["runs"]:
        groups = [load_group(g) for g in resolve_model_groups([run])]
        _, raw = predict_frame(groups, frame, reporter=reporter)
        raws.append(raw)
    meta = MetaModel.from_dict(data["meta"])
    raw = meta.predict(features(spec.task, raws))
    threshold = data.get("threshold")
    decoded = spec.decode(raw, threshold=0.5 if threshold is None else np.asarray(threshold))
    return decoded, raw


def predict_stack_file(
    path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    id_col: str | None = None,
    sample_submission: str | Path | None = None,
    proba: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """``mlxbert predict --model STACK_DIR``: as :func:`mlxbert_kaggle.predict_file` for one
    model (the id column, the sample submission's columns and order, atomic writing)."""
    check_output_file(output_path, overwrite=overwrite)
    if not is_stack(path):
        raise InputError(f"{path} holds no stack.json written by `mlxbert stack`")
    sample = None
    if sample_submission is not None:
        sample = read_table(sample_submission, what="sample submission", keep_text=[])
        id_col = id_col or str(sample.columns[0])
        sample = read_table(sample_submission, what="sample submission", keep_text=[id_col])
    frame = read_table(input_path, keep_text=[id_col] if id_col else [], what="input")
    if id_col is not None:
        if id_col not in frame.columns:
            raise missing_columns_error([id_col], frame.columns, f"input {input_path}")
        check_unique_ids(frame[id_col], f"input {input_path}")
    spec = TargetSpec.from_dict(read_json(Path(path) / STACK_FILE)["target"])
    if sample is not None:  # ids and columns must fit the sample before any model runs
        align_to_sample(frame[[id_col]].assign(**{c: 0 for c in spec.columns}), sample, id_col)
    decoded, raw = predict_stack(path, frame, reporter=reporter)
    parts = [frame[[id_col]].reset_index(drop=True)] if id_col else []
    parts.append(decoded)
    if proba and spec.task != "regression":
        parts.append(spec.raw_frame(raw))
    table = pd.concat(parts, axis=1)
    if sample is not None:
        table = align_to_sample(table, sample, id_col)
    write_table(table, output_path)
    return {"rows": len(table), "models": [str(path)], "output": str(output_path)}


__all__ = [
    "MetaModel",
    "cv_score",
    "features",
    "is_stack",
    "predict_stack",
    "predict_stack_file",
    "stack",
]
