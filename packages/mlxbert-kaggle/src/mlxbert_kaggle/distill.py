"""Knowledge distillation: a student fitted to the soft predictions of a teacher ensemble.

The teachers are CV training runs (``mlxbert train --folds K``, a pseudo-labelled run too)
on the same rows and folds as the student. Fold k of the student learns from the teachers'
fold-k models, which never saw fold k's validation rows, so the student's CV score stays
honest (the teachers' out-of-fold predictions would not: each comes from a model trained on
the other folds, fold k's labels among them). Those models predict rows they were trained
on, so their probabilities are sharper than out-of-fold ones; the temperature softens them.
The student trains through the same fit loop as ``train``, on targets that mix soft and hard
labels::

    target = alpha * soft + (1 - alpha) * hard

where ``soft`` is the teachers' mean probability softened by ``temperature`` (binary and
multilabel: ``sigmoid(logit(p) / T)``; multiclass: ``softmax(log(p) / T)``) and ``hard`` the
real label (one-hot for multiclass). Cross-entropy is linear in its target, so this is
exactly ``alpha`` x the loss on the soft targets plus ``1 - alpha`` x the loss on the labels.
The student is trained at temperature 1 (its predictions need no rescaling). For regression
the soft target is the teachers' mean value (no temperature); the squared error on the mixed
target has the same gradient as the same mix of the two squared errors. Validation and the
CV score use the real labels only.

Output folder: a ``mlxbert train`` output (folds, ``oof.csv``, ``metrics.json``, which also
holds the teachers and settings under ``distill``), plus ``_distill/fold-K.npy``, the targets
each fold trained on, and ``_distill/settings.json`` (a resumed run trains on the same ones,
and only with the same teachers, temperature and alpha).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import read_json, write_json
from .cv import WORK, FoldData, train_table
from .errors import InputError
from .outputs import check_output_dir
from .predicting import load_model
from .progress import Reporter
from .table_spec import target_spec
from .targets import TargetSpec
from .training import FitConfig, predict_raw

DISTILL_TASKS = ("binary", "multiclass", "multilabel", "regression")
CACHE = "_distill"
SETTINGS_FILE = "settings.json"


def soften(task: str, proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at ``temperature`` (1 leaves them as they are)."""
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-7, 1 - 1e-7)
    if temperature == 1.0 or task == "regression":
        return np.asarray(proba, dtype=np.float64)
    if task in ("binary", "multilabel"):
        logit = np.log(p) - np.log1p(-p)
        return 1.0 / (1.0 + np.exp(-logit / temperature))
    logits = np.log(p) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def mixed_targets(spec: TargetSpec, soft: np.ndarray, hard: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * soft + (1 - alpha) * hard`` in the shape the task's head trains on."""
    hard = np.asarray(hard)
    if spec.task == "multiclass":
        onehot = np.eye(spec.num_outputs, dtype=np.float64)[hard.astype(np.int64)]
        return (alpha * soft + (1 - alpha) * onehot).astype(np.float32)
    soft = np.asarray(soft, dtype=np.float64).reshape(hard.shape)
    return (alpha * soft + (1 - alpha) * hard).astype(np.float32)


class _Teachers:
    """The fold hook: fold k's targets from the teachers' fold-k models."""

    def __init__(self, runs, spec, settings, output, batch_size):
        self.runs = runs  # [(name, [fold model folders], folds file)]
        self.spec = spec
        self.settings = settings
        self.temperature = settings["temperature"]
        self.alpha = settings["alpha"]
        self.cache = output / CACHE
        self.batch_size = batch_size
        self.checked = False

    def _check_folds(self, data: FoldData) -> None:
        for name, _, folds_file in self.runs:
            folds = read_json(folds_file)
            if folds != data.fold_of.tolist():
                raise InputError(
                    f"teacher {name} was cross-validated on other rows or folds than the "
                    "student; give the student the teachers' data flags (--train, --max-rows, "
                    "--folds, --seed, --group-col), so that no fold's validation rows reach "
                    "its student through a teacher"
                )
        self.checked = True
        write_json(self.cache / SETTINGS_FILE, self.settings)  # what the cached targets mean

    def __call__(self, data: FoldData) -> tuple[list[str], np.ndarray]:
        if not self.checked:
            self._check_folds(data)
        path = self.cache / f"fold-{data.fold + 1}.npy"
        if path.is_file():
            return data.texts, np.load(path)
        rows = data.frame.iloc[data.rows].reset_index(drop=True)
        rows.attrs = dict(data.frame.attrs)
        parts = []
        for _, models, _ in self.runs:
            teacher = load_model(models[data.fold])
            texts = teacher.template.render(rows, rows.attrs.get("source", "the table"))
            parts.append(
                predict_raw(
                    teacher.model,
                    teacher.tokenizer,
                    texts,
                    task=self.spec.task,
                    max_length=teacher.max_length,
                    batch_size=self.batch_size,
                )
            )
        soft = soften(self.spec.task, np.mean(parts, axis=0), self.temperature)
        targets = mixed_targets(self.spec, soft, data.y, self.alpha)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, targets)
        return data.texts, targets


def _teacher_run(path: Path, spec: TargetSpec, folds: int) -> tuple[str, list[Path], Path]:
    metrics = read_json(path / "metrics.json")
    if not metrics or metrics.get("mode") != "cv" or not metrics.get("models"):
        raise InputError(
            f"--teacher {path}: not a finished CV training run (metrics.json of "
            "`mlxbert train --folds K`)"
        )
    models = [path / m for m in metrics["models"]]
    missing = [str(m) for m in models if not (m / "mlxbert.json").is_file()]
    if missing:
        raise InputError(f"--teacher {path}: model folder(s) {missing} are missing")
    theirs = TargetSpec.from_dict(metrics["target"])
    if (theirs.task, theirs.columns, theirs.labels) != (spec.task, spec.columns, spec.labels):
        raise InputError(
            f"--teacher {path} predicts {theirs.task} {theirs.columns} {theirs.labels or ''}; "
            f"the student's target is {spec.task} {spec.columns} {spec.labels or ''}"
        )
    if len(models) != folds:
        raise InputError(f"--teacher {path} has {len(models)} folds; the student has {folds}")
    return str(path), models, models[0].parent / WORK / "folds.json"


def distill(
    teachers: Sequence[str | Path],
    *,
    output: str | Path,
    config: FitConfig | None = None,
    temperature: float | None = None,
    alpha: float = 0.5,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    **table: Any,
) -> dict[str, Any]:
    """Train ``config.model`` (the student) by CV on the teachers' soft predictions; returns
    (and writes) ``metrics.json``. ``temperature`` defaults to 2 for classification (none
    for regression); ``alpha`` is the soft targets' share. ``table``: the data keywords of
    :func:`mlxbert_kaggle.cv.train_table` (``folds`` required, as the teachers')."""
    started = time.perf_counter()
    reporter = reporter or Reporter()
    config = config or FitConfig()
    folds = table.get("folds")
    if not folds:
        raise InputError("distill works per CV fold: give --folds K, as the teachers' runs")
    if not teachers:
        raise InputError("give at least one --teacher (a CV training output folder)")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1], got {alpha}")
    spec = target_spec(table)
    if spec.task not in DISTILL_TASKS:
        raise InputError(f"distillation covers {', '.join(DISTILL_TASKS)} targets, not {spec.task}")
    if spec.task == "regression" and temperature not in (None, 1.0):
        raise InputError("--temperature softens probabilities; a regression target has none")
    if temperature is None:
        temperature = 1.0 if spec.task == "regression" else 2.0
    if temperature <= 0:
        raise InputError(f"--temperature must be > 0, got {temperature}")
    check_output_dir(output, overwrite=overwrite, resume=resume, resumable=True)
    runs = [_teacher_run(Path(t), spec, folds) for t in teachers]
    settings = {
        "teachers": [name for name, _, _ in runs],
        "temperature": temperature,
        "alpha": alpha,
    }
    saved = read_json(Path(output) / CACHE / SETTINGS_FILE)
    if resume and saved is not None and saved != settings:
        changed = sorted(k for k in settings if saved.get(k) != settings[k])
        raise InputError(
            f"--resume: {output} holds a distillation with other settings ({', '.join(changed)})"
        )
    hook = _Teachers(runs, spec, settings, Path(output), config.eval_batch_size)
    summary = train_table(
        output=output,
        config=config,
        resume=resume,
        overwrite=overwrite,
        reporter=reporter,
        fold_train=hook,
        **table,
    )
    summary["distill"] = settings
    summary["seconds"] = time.perf_counter() - started
    write_json(Path(output) / "metrics.json", summary)
    return summary


__all__ = ["DISTILL_TASKS", "distill", "mixed_targets", "soften"]
