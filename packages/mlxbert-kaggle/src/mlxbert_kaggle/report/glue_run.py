"""A GLUE fine-tuning output folder (``mlxbert glue finetune``) as a :class:`RunSummary`:
``finetune.json`` (recipe, per-seed best metrics, mean and spread) and one fit per seed under
``runs/seed-N`` (the best seed's dev predictions feed the prediction sections)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlxbert_glue import get_task
from mlxbert_glue.task_model import load_examples, read_info, read_json
from mlxbert_heads import head_from_config

from .fits import EXAMPLES_FILE, LOG_FILE, OUTPUTS_FILE, fit_timings, fitted_state, read_curve
from .summary import PartScore, Predictions, RunSummary


def _glue_predictions(
    seed_dir: Path, task, reference: dict[str, float], notes: list[str]
) -> Predictions | None:
    outputs_path = seed_dir / OUTPUTS_FILE
    examples = load_examples(seed_dir / EXAMPLES_FILE)
    if not outputs_path.is_file() or examples is None or examples.labels is None:
        notes.append(
            f"{seed_dir.name}: the dev predictions or their targets were not kept by this run "
            f"({OUTPUTS_FILE}, {EXAMPLES_FILE}); the sections that need them are left out"
        )
        return None
    outputs = np.load(outputs_path)
    info = read_info(seed_dir / "best")
    head = head_from_config(info.head)
    texts = examples.texts
    if examples.pairs is not None:
        texts = [f"{a} ‖ {b}" for a, b in zip(examples.texts, examples.pairs)]
    source = f"dev predictions of the best seed ({seed_dir.name}, best epoch)"
    checked = dict(reference=reference, reference_source=f"finetune.json ({seed_dir.name}, best)")
    if task.is_regression:
        return Predictions(
            task="regression",
            source=source,
            labels=["label"],
            truth=np.asarray(examples.labels, dtype=np.float64).reshape(-1, 1),
            predicted=np.asarray(head.predict(outputs), dtype=np.float64).reshape(-1, 1),
            texts=texts,
            **checked,
        )
    logits = np.asarray(outputs, dtype=np.float64)
    proba = np.asarray(head.predict_proba(outputs), dtype=np.float64).reshape(len(logits), -1)
    temperature = float(fitted_state(seed_dir / "best").get("temperature", 1.0))
    return Predictions(
        task="multiclass",
        source=source,
        labels=info.label_names(proba.shape[1]),
        truth=np.asarray(examples.labels).astype(np.int64).reshape(-1),
        predicted=np.asarray(head.predict(outputs)).astype(np.int64).reshape(-1),
        proba=proba,
        logits=logits,
        temperature=np.full(len(logits), temperature),
        texts=texts,
        **checked,
    )


def load_glue_run(path: Path) -> RunSummary:
    """A GLUE fine-tuning output: one fit per seed under ``runs/seed-N``."""
    data = read_json(path / "finetune.json")
    task = get_task(data["task"])
    metric = task.metrics[0] if len(task.metrics) == 1 else "score"
    notes: list[str] = []
    parts, curves = [], []
    for run in data["runs"]:
        name = f"seed {run['seed']}"
        best = run["best"]
        parts.append(
            PartScore(name, {"score": best["score"], **best["metrics"]}, best_epoch=best["epoch"])
        )
        curve = read_curve(path / "runs" / f"seed-{run['seed']}", name)
        if curve is not None:
            curve.metric = metric
            log = read_json(path / "runs" / f"seed-{run['seed']}" / LOG_FILE)
            curve.scores = [(e.get("metrics") or {}).get(metric) for e in log["epochs"]]
            curves.append(curve)
    best_dir = path / "runs" / f"seed-{data['best_seed']}"
    best_run = next(r for r in data["runs"] if r["seed"] == data["best_seed"])
    predictions = _glue_predictions(best_dir, task, dict(best_run["best"]["metrics"]), notes)
    metrics = {"score": data["mean_score"], **data["mean"]}
    recipe = data.get("recipe") or {}
    settings = {
        "task": task.name,
        "model": data.get("model"),
        "init_from": data.get("init_from"),
        "train examples": data.get("train_examples"),
        "dev examples": data.get("dev_examples"),
        **{f"recipe.{k}": v for k, v in recipe.items()},
    }
    return RunSummary(
        kind="glue",
        path=path,
        title=f"GLUE {task.name}: {data.get('model')}",
        task=predictions.task
        if predictions
        else ("regression" if task.is_regression else "multiclass"),
        metric=metric,
        greater_is_better=True,
        score=float(metrics[metric]),
        metrics=metrics,
        metrics_source=f"finetune.json: dev metrics, mean over {len(parts)} seed(s)",
        parts=parts,
        parts_title="Seed scores (best epoch of each seed, dev)",
        part_mean={"score": data["mean_score"], **(data.get("mean") or {})},
        part_std=dict(data.get("std") or {}),
        curves=curves,
        predictions=predictions,
        settings=settings,
        timings=fit_timings(data.get("seconds"), curves),
        notes=notes,
    )


__all__ = ["load_glue_run"]
