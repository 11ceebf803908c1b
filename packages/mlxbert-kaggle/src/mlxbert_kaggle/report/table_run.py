"""A table training output (``mlxbert train`` / ``mlxbert kaggle run``) as a
:class:`RunSummary`: ``metrics.json`` (scores, per-fold scores, settings), the prediction
table (``oof.csv`` for cross-validation, ``valid_predictions.csv`` for a hold-out run) and
each fit's work folder under ``_work/`` (learning curves, head outputs, texts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlxbert_glue.task_model import load_examples, read_json

from ..scoring import greater_is_better
from ..tables import read_table
from ..targets import TargetSpec
from ..template import TextTemplate
from ..timeseries import TimeSeriesSpec
from .fits import EXAMPLES_FILE, OUTPUTS_FILE, fit_timings, fitted_state, read_curve
from .summary import CLASSIFICATION, PartScore, Predictions, RunSummary

WORK = "_work"


def _fits(path: Path, data: dict[str, Any]) -> list[tuple[str, Path, Path]]:
    """(name, work folder, model folder) of every fit of the run."""
    if data["mode"] == "cv":
        return [
            (f"fold {k}", path / WORK / f"fold-{k}", path / f"fold-{k}")
            for k in range(1, len(data["folds"]) + 1)
        ]
    return [("model", path / WORK / "model", path / "model")]


def _encode(spec: TargetSpec, frame: pd.DataFrame, prefix: str, where: str) -> np.ndarray:
    columns = {f"{prefix}{c}": c for c in spec.columns}
    return spec.encode(frame[list(columns)].rename(columns=columns), where)


def _per_row(rows_of_fit: list[np.ndarray], values: list[Any], n: int) -> list[Any] | None:
    """Values kept per fit (in each fit's validation order) put back into table row order."""
    if any(v is None or len(v) != len(rows) for v, rows in zip(values, rows_of_fit)):
        return None
    out: list[Any] = [None] * n
    for rows, fit_values in zip(rows_of_fit, values):
        for row, value in zip(rows, fit_values):
            out[int(row)] = value
    return out


def _forecasts(path: Path, data: dict[str, Any], notes: list[str]) -> Predictions | None:
    """A forecasting run's validation rows: every horizon step as one regression target."""
    spec = TimeSeriesSpec.from_dict(data["timeseries"])
    table_path = path / "valid_predictions.csv"
    if not table_path.is_file():
        notes.append(f"{table_path.name} is missing: the prediction sections are left out")
        return None
    frame = read_table(table_path, what="predictions")
    columns = spec.output_columns
    return Predictions(
        task="regression",
        labels=columns,
        truth=frame[[f"true_{c}" for c in columns]].to_numpy(dtype=np.float64),
        predicted=frame[columns].to_numpy(dtype=np.float64),
        source="validation predictions (the last rows of each series)",
        reference=dict(data.get("metrics") or {}),
        reference_source="metrics.json (metrics)",
    )


def _predictions(path: Path, data: dict[str, Any], settings: dict[str, Any], notes: list[str]):
    if "timeseries" in data:
        return _forecasts(path, data, notes)
    spec = TargetSpec.from_dict(data["target"])
    cv = data["mode"] == "cv"
    table_path = path / ("oof.csv" if cv else "valid_predictions.csv")
    if not table_path.is_file():
        notes.append(f"{table_path.name} is missing: the prediction sections are left out")
        return None
    id_col = settings.get("id_col")
    frame = read_table(table_path, keep_text=[id_col] if id_col else [], what="predictions")
    fits = _fits(path, data)
    n = len(frame)
    if cv:
        fold = frame["fold"].to_numpy(dtype=np.int64)
        rows_of_fit = [np.flatnonzero(fold == k) for k in range(1, len(fits) + 1)]
    else:
        rows_of_fit = [np.arange(n)]
    where = str(table_path)
    source = "out-of-fold predictions (oof.csv)" if cv else "validation predictions"
    ids = frame[id_col].astype(str).tolist() if id_col and id_col in frame else None
    examples = [load_examples(work / EXAMPLES_FILE) for _, work, _ in fits]
    texts = _per_row(rows_of_fit, [None if e is None else e.texts for e in examples], n)
    if texts is None:
        notes.append(f"the validation texts were not kept by this run ({EXAMPLES_FILE})")
    common = dict(
        source=source,
        texts=texts,
        ids=ids,
        reference=dict(data.get("cv") or data.get("metrics") or {}),
        reference_source="metrics.json" + (" (cv)" if cv else " (metrics)"),
    )
    if spec.task == "regression":
        return Predictions(
            task="regression",
            labels=list(spec.columns),
            truth=frame[spec.columns].to_numpy(dtype=np.float64),
            predicted=frame[[f"pred_{c}" for c in spec.columns]].to_numpy(dtype=np.float64),
            scale=spec.transform,
            **common,
        )
    labels = list(spec.labels or [])
    truth = _encode(spec, frame, "", where)
    predicted = _encode(spec, frame, "pred_", where)
    if spec.task == "binary":
        p = frame[f"proba_{labels[1]}"].to_numpy(dtype=np.float64)
        proba = np.stack([1.0 - p, p], axis=1)
    else:
        proba = frame[[f"proba_{name}" for name in labels]].to_numpy(dtype=np.float64)
    outputs = [
        np.load(work / OUTPUTS_FILE) if (work / OUTPUTS_FILE).is_file() else None
        for _, work, _ in fits
    ]
    per_row = _per_row(rows_of_fit, outputs, n)
    logits = None if per_row is None else np.asarray(per_row, dtype=np.float64).reshape(n, -1)
    if logits is not None and spec.task == "binary":
        logits = logits[:, 0]
    states = [fitted_state(model) for _, _, model in fits]
    temperature = np.ones(n)
    for rows, state in zip(rows_of_fit, states):
        temperature[rows] = float(state.get("temperature", 1.0))
    thresholds = {name: s.get("threshold") for (name, _, _), s in zip(fits, states)}
    fitted = {k: float(t) for k, t in thresholds.items() if t is not None}
    if all(t == 0.5 for t in fitted.values()):
        fitted = {}  # every model decides at the default
    if spec.task in CLASSIFICATION:
        truth, predicted = truth.reshape(-1), predicted.reshape(-1)
    return Predictions(
        task=spec.task,
        labels=labels,
        truth=truth.astype(np.int64),
        predicted=predicted.astype(np.int64),
        proba=proba,
        logits=logits,
        temperature=temperature,
        thresholds=fitted,
        **common,
    )


def _template_text(template: dict[str, Any]) -> str | None:
    if not template:
        return None
    try:
        return TextTemplate.from_dict(template).describe()
    except (TypeError, ValueError):
        return None


def _target(data: dict[str, Any]) -> dict[str, Any]:
    """The target record of ``metrics.json``; a forecasting run's as a regression target."""
    if "timeseries" in data:
        spec = TimeSeriesSpec.from_dict(data["timeseries"])
        return {"columns": spec.output_columns, "task": "timeseries"}
    return data.get("target") or {}


def _flat_settings(
    data: dict[str, Any], target: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mode": data["mode"],
        "folds": settings.get("folds"),
        "rows": settings.get("rows"),
        "target": ", ".join(target.get("columns") or []),
        "task": target.get("task"),
        "labels": ", ".join(map(str, target.get("labels") or [])) or None,
        "target transform": target.get("transform"),
        "text": _template_text(data.get("template") or {}),
        "id column": settings.get("id_col"),
        "group column": settings.get("group_col"),
        "rows dropped (missing target)": data.get("dropped_target_rows"),
    }
    out |= {f"config.{k}": v for k, v in (data.get("config") or {}).items()}
    return {k: v for k, v in out.items() if v is not None}


def load_table_run(path: Path) -> RunSummary:
    """A ``mlxbert train`` / ``mlxbert kaggle run`` output folder."""
    data = read_json(path / "metrics.json")
    settings = read_json(path / WORK / "run.json") or {}
    metric = data["metric"]
    notes: list[str] = []
    curves = [c for name, work, _ in _fits(path, data) if (c := read_curve(work, name))]
    cv = data["mode"] == "cv"
    parts = [
        PartScore(
            f"fold {f['fold']}", f["metrics"], best_epoch=f.get("best_epoch"), rows=f.get("rows")
        )
        for f in data.get("folds") or []
    ]
    predictions = _predictions(path, data, settings, notes)
    target = _target(data)
    task = target.get("task", "")
    return RunSummary(
        kind=data["mode"],
        path=path,
        title=f"{', '.join(target.get('columns') or [])} ({task}): "
        f"{(data.get('config') or {}).get('model')}",
        task=task,
        metric=metric,
        greater_is_better=greater_is_better(metric),
        score=float(data["score"]),
        metrics=dict(data.get("cv") or data.get("metrics") or {}),
        metrics_source=(
            "metrics.json: cross-validation score over the out-of-fold predictions"
            if cv
            else "metrics.json: validation score of the best epoch"
        ),
        parts=parts,
        parts_title="Cross-validation fold scores (best epoch of each fold)" if cv else "",
        part_mean=dict(data.get("fold_mean") or {}),
        part_std=dict(data.get("fold_std") or {}),
        curves=curves,
        predictions=predictions,
        settings=_flat_settings(data, target, settings),
        timings=fit_timings(data.get("seconds"), curves),
        notes=notes,
    )


__all__ = ["load_table_run"]
