"""Pseudo-labelling: train, label the confident rows of an unlabelled table, train again.

Round 0 is a plain CV run. In round r, fold k trains on its real training rows plus the
unlabelled rows that round r-1's fold-k model -- trained without fold k's validation rows --
predicts with confidence at least ``threshold``; the validation rows and the CV score are
the real labels only. A pseudo row whose text equals one of fold k's validation texts is left
out of fold k (test sets often repeat training rows), so no validation row reaches training
under another name. Each round is a complete ``mlxbert train`` folder.

Confidence: binary ``max(p, 1 - p)``, multiclass / ordinal the top class probability,
multilabel every label's ``max(p, 1 - p)``; the pseudo label is the hard decision (0.5 cut,
top class). Regression has no confidence to select rows by, so it is refused rather than
trained on every prediction.

Output folder::

    DIR/round-0/ ... DIR/round-R/   each round's training output (folds, oof.csv, metrics.json)
    DIR/pseudo.json                 settings and, per round and fold, the labelling model and
                                    how many unlabelled rows were confident, left out and used
    DIR/metrics.json                the last round's scores and its fold models (what
                                    ``mlxbert predict --model DIR`` uses), every round's score
    DIR/oof.csv                     the last round's out-of-fold predictions
    DIR/_pseudo/round-R/fold-K.json the rows (and labels) each fold took, so that a resumed
                                    round trains on exactly the same rows
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import read_json, write_json
from .cv import FoldData, train_table
from .errors import InputError
from .outputs import check_output_dir, claimed_dir
from .predicting import load_model
from .progress import Reporter
from .table_spec import target_spec
from .tables import read_table
from .training import FitConfig, predict_raw

SETTINGS_FILE = "pseudo.json"
CACHE = "_pseudo"
PSEUDO_TASKS = ("binary", "multiclass", "ordinal", "multilabel")


def confident_labels(task: str, raw: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of confident rows, their encoded hard labels) for raw predictions."""
    raw = np.asarray(raw, dtype=np.float64)
    if task == "binary":
        p = raw.reshape(-1)
        mask = np.maximum(p, 1 - p) >= threshold
        return mask, (p[mask] >= 0.5).astype(np.float32)
    if task in ("multiclass", "ordinal"):
        proba = raw.reshape(len(raw), -1)
        mask = proba.max(axis=1) >= threshold
        return mask, proba[mask].argmax(axis=1).astype(np.int32)
    if task == "multilabel":
        proba = raw.reshape(len(raw), -1)
        mask = (np.maximum(proba, 1 - proba) >= threshold).all(axis=1)
        return mask, (proba[mask] >= 0.5).astype(np.float32)
    raise InputError(
        f"pseudo-labelling needs class probabilities to pick confident rows; a {task} target "
        "has none (use it for binary, multiclass, ordinal or multilabel targets)"
    )


class _Labeller:
    """The fold hook of one round: fold k's training rows plus the confident unlabelled rows
    of the previous round's fold-k model. The choice is kept in ``cache`` so that a resumed
    round trains on exactly the rows it started with."""

    def __init__(self, previous: Path, unlabelled: pd.DataFrame, threshold: float, cache: Path):
        self.previous = previous
        self.unlabelled = unlabelled
        self.threshold = threshold
        self.cache = cache
        self.records: list[dict[str, Any]] = []

    def __call__(self, data: FoldData) -> tuple[list[str], np.ndarray]:
        name = f"fold-{data.fold + 1}"
        model = load_model(self.previous / name)
        where = self.unlabelled.attrs.get("source", "the unlabelled table")
        texts = model.template.render(self.unlabelled, where)
        dtype = np.asarray(data.y).dtype
        saved = read_json(self.cache / f"{name}.json")
        if saved is None:
            saved = self._choose(model, texts, data)
            write_json(self.cache / f"{name}.json", saved)
        used = np.asarray(saved["rows"], dtype=np.int64)
        labels = np.asarray(saved["labels"], dtype=dtype).reshape(len(used), *data.y.shape[1:])
        self.records.append({k: v for k, v in saved.items() if k != "labels"})
        y = np.concatenate([np.asarray(data.y), labels])
        return [*data.texts, *(texts[i] for i in used)], y

    def _choose(self, model, texts: list[str], data: FoldData) -> dict[str, Any]:
        raw = predict_raw(
            model.model, model.tokenizer, texts, task=data.spec.task, max_length=model.max_length
        )
        mask, labels = confident_labels(data.spec.task, raw, self.threshold)
        held_out = set(data.valid_texts)
        chosen = np.flatnonzero(mask)
        keep = np.array([texts[i] not in held_out for i in chosen], dtype=bool)
        used, labels = chosen[keep], labels[keep]
        return {
            "fold": data.fold + 1,
            "labelled_by": f"{self.previous.name}/fold-{data.fold + 1}",
            "unlabelled": len(texts),
            "confident": int(mask.sum()),
            "left_out_as_validation_text": int((~keep).sum()),
            "used": len(used),
            "label_counts": _label_counts(labels),
            "rows": used.tolist(),
            "labels": labels.tolist(),
        }


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    if labels.ndim > 1:  # multilabel: positives per label
        return {str(j): int(v) for j, v in enumerate(labels.sum(axis=0))}
    values, counts = np.unique(labels.astype(np.int64), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def train_pseudo_labelled(
    train: pd.DataFrame | str | Path,
    *,
    unlabelled: pd.DataFrame | str | Path,
    output: str | Path,
    threshold: float = 0.95,
    rounds: int = 1,
    config: FitConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    **table: Any,
) -> dict[str, Any]:
    """CV training on ``train`` with ``rounds`` rounds of pseudo-labels from ``unlabelled``
    (a table with the training table's text columns); returns (and writes) ``metrics.json``.

    ``table``: the other data keywords of :func:`mlxbert_kaggle.cv.train_table`; ``folds``
    is required (each fold's pseudo labels come from that fold's own model).
    """
    table = {"train": train, **table}
    started = time.perf_counter()
    reporter = reporter or Reporter()
    config = config or FitConfig()
    if not table.get("folds"):
        raise InputError("--pseudo-label works per CV fold: give --folds K (K >= 2)")
    if not 0.5 <= threshold < 1.0:
        raise InputError(f"--pseudo-threshold must be in [0.5, 1), got {threshold}")
    if rounds < 1:
        raise InputError(f"--pseudo-rounds must be >= 1, got {rounds}")
    if table.get("task") == "timeseries":
        confident_labels("timeseries", np.zeros(1), threshold)  # the refusal's message
    task = target_spec(table).task
    if task not in PSEUDO_TASKS:
        confident_labels(task, np.zeros(1), threshold)
    output = Path(output)
    check_output_dir(output, overwrite=overwrite, resume=resume, resumable=True)
    if isinstance(unlabelled, pd.DataFrame):
        frame = unlabelled
    else:
        frame = read_table(unlabelled, what="unlabelled (--pseudo-label)")
    settings = {
        "unlabelled": str(unlabelled) if not isinstance(unlabelled, pd.DataFrame) else None,
        "unlabelled_digest": _digest(frame),
        "unlabelled_rows": len(frame),
        "threshold": threshold,
        "rounds": rounds,
    }
    with claimed_dir(output, overwrite=overwrite, resume=resume, resumable=True):
        _claim(output, settings)
        history = []
        summary: dict[str, Any] = {}
        for r in range(rounds + 1):
            reporter.log(f"pseudo-labelling round {r}/{rounds}")
            hook = None
            if r > 0:
                cache = output / CACHE / f"round-{r}"
                hook = _Labeller(output / f"round-{r - 1}", frame, threshold, cache)
            summary = train_table(
                output=output / f"round-{r}",
                config=config,
                resume=resume,
                reporter=reporter,
                fold_train=hook,
                **table,
            )
            entry = {"round": r, "score": summary["score"], "cv": summary["cv"]}
            if hook is not None:
                entry["folds"] = hook.records
                used = sum(f["used"] for f in hook.records)
                reporter.log(
                    f"round {r}: {used} pseudo-labelled row(s) over {len(hook.records)} folds; "
                    f"CV {summary['metric']} {summary['score']:.4f}"
                )
            history.append(entry)
        write_json(output / SETTINGS_FILE, {**settings, "rounds_done": history})
        last = f"round-{rounds}"
        shutil.copyfile(output / last / "oof.csv", output / "oof.csv")
        result = {
            **summary,
            "models": [f"{last}/{m}" for m in summary["models"]],
            "pseudo": {
                **settings,
                "scores": [{"round": h["round"], "score": h["score"]} for h in history],
                "rows_used": [
                    {"round": h["round"], "per_fold": [f["used"] for f in h.get("folds", [])]}
                    for h in history
                ],
            },
            "seconds": time.perf_counter() - started,
        }
        write_json(output / "metrics.json", result)
        return result


def describe_rounds(summary: dict[str, Any]) -> str:
    """One line per round: its CV score and the pseudo-labelled rows its folds used."""
    metric = summary["metric"]
    lines = []
    for score, used in zip(summary["pseudo"]["scores"], summary["pseudo"]["rows_used"]):
        rows = f"; pseudo rows per fold {used['per_fold']}" if used["per_fold"] else ""
        lines.append(f"round {score['round']}: CV {metric} {score['score']:.4f}{rows}")
    return "\n".join(lines)


def run_folder(output: str | Path, summary: dict[str, Any]) -> Path:
    """The folder holding a run's folds: ``output`` itself, or a pseudo run's last round."""
    models = summary.get("models") or []
    if "pseudo" in summary and models:
        return Path(output) / Path(models[0]).parent
    return Path(output)


def _claim(output: Path, settings: dict[str, Any]) -> None:
    saved = read_json(output / SETTINGS_FILE)
    if saved is None:
        if any(p.name != SETTINGS_FILE for p in output.iterdir()):
            raise InputError(
                f"--resume: {output} holds no pseudo-labelling run to continue; choose an "
                "empty folder, or --overwrite to replace what is there"
            )
        write_json(output / SETTINGS_FILE, settings)
        return
    changed = sorted(k for k in settings if saved.get(k) != settings[k])
    if changed:
        raise InputError(
            f"--resume: {output} holds a pseudo-labelling run with other settings "
            f"({', '.join(changed)}); use the same flags, or --overwrite to start again"
        )


__all__ = [
    "PSEUDO_TASKS",
    "confident_labels",
    "describe_rounds",
    "run_folder",
    "train_pseudo_labelled",
]
