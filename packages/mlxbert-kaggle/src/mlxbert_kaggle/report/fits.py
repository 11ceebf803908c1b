"""What one fit leaves in its work folder, read for the report (the task-model layer's fit
loop writes it): ``log.json`` (per-epoch loss, metrics, seconds, learning rate; the best
epoch), ``valid_outputs.npy`` (the best epoch's head outputs on the validation examples) and
``valid_examples.json`` (those examples' texts and targets, in the same order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxbert_glue.task_model import read_info, read_json

from .summary import FitCurve

LOG_FILE = "log.json"
OUTPUTS_FILE = "valid_outputs.npy"
EXAMPLES_FILE = "valid_examples.json"


def read_curve(work_dir: Path, name: str) -> FitCurve | None:
    """One fit's epochs from ``work_dir/log.json`` (None when there is no log)."""
    log = read_json(work_dir / LOG_FILE)
    if not log or not log.get("epochs"):
        return None
    epochs = log["epochs"]
    best = log.get("best") or {}
    metric = best.get("metric") or next((e.get("metric") for e in epochs if e.get("metric")), None)
    scores = [e.get("score") for e in epochs]
    return FitCurve(
        name=name,
        epochs=[int(e["epoch"]) for e in epochs],
        loss=[float(e["loss"]) for e in epochs],
        scores=[None if s is None else float(s) for s in scores],
        metric=metric,
        best_epoch=best.get("epoch") if any(s is not None for s in scores) else None,
        train_seconds=[float(e.get("train_seconds") or 0.0) for e in epochs],
        eval_seconds=[float(e.get("eval_seconds") or 0.0) for e in epochs],
        learning_rate=[float(e.get("learning_rate") or 0.0) for e in epochs],
    )


def fitted_state(model_dir: Path) -> dict[str, Any]:
    """The saved head's fitted state (temperature, threshold, ...) of a model folder."""
    try:
        head = read_info(model_dir).head or {}
    except (OSError, ValueError):
        return {}
    return dict(head.get("fitted") or {})


def fit_timings(total: float | None, curves: list[FitCurve]) -> dict[str, float | int]:
    """Total seconds (from the run's summary file) and the fits' epoch seconds added up."""
    out: dict[str, float | int] = {}
    if total is not None:
        out["total seconds"] = float(total)
    if curves:
        out["training seconds (all epochs)"] = float(sum(sum(c.train_seconds) for c in curves))
        out["evaluation seconds (all epochs)"] = float(sum(sum(c.eval_seconds) for c in curves))
        epochs = sum(len(c.epochs) for c in curves)
        out["epochs"] = epochs
        out["seconds per epoch (training, mean)"] = out["training seconds (all epochs)"] / epochs
    return out


__all__ = ["EXAMPLES_FILE", "LOG_FILE", "OUTPUTS_FILE", "fit_timings", "fitted_state", "read_curve"]
