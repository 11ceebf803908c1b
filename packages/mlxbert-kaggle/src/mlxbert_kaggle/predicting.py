"""Predicting a table with one or several trained model folders.

A path given as a model is either a model folder (it holds ``mlxbert.json``) or a training
output folder (it holds ``metrics.json`` naming its model folders: the CV folds, used together
as an ensemble). Every model renders the rows with the template it was trained with, so only
the raw table is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlxbert_glue import TaskModelInfo, open_task_model

from .atomic import read_json
from .ensemble import combine
from .errors import InputError, missing_columns_error
from .progress import Reporter
from .submission import align_to_sample, check_unique_ids
from .tables import read_table, write_table
from .targets import TargetSpec
from .template import TextTemplate
from .training import predict_raw


def resolve_model_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Model folders behind ``paths`` (training output folders expand to their models)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"model path {p} does not exist")
        if (p / "mlxbert.json").is_file():
            out.append(p)
            continue
        metrics = read_json(p / "metrics.json") if p.is_dir() else None
        if metrics and metrics.get("models"):
            missing = [m for m in metrics["models"] if not (p / m / "mlxbert.json").is_file()]
            if missing:
                raise InputError(
                    f"{p}/metrics.json lists model folder(s) {missing} that are missing or "
                    "incomplete; the training run did not finish (continue it with --resume)"
                )
            out.extend(p / m for m in metrics["models"])
            continue
        raise InputError(
            f"{p} is neither a model folder (no mlxbert.json) nor a training output folder "
            "(no metrics.json); point --model at what `mlxbert train` wrote"
        )
    if not out:
        raise InputError("give at least one --model")
    return out


@dataclass
class LoadedModel:
    path: Path
    model: Any
    tokenizer: Any
    info: TaskModelInfo
    spec: TargetSpec
    template: TextTemplate | None

    @property
    def max_length(self) -> int:
        return self.info.tokens

    @property
    def meta(self) -> dict[str, Any]:
        """The folder's ``mlxbert.json`` as a dict."""
        return self.info.to_meta()


def _spec_from_info(info: TaskModelInfo) -> tuple[TargetSpec, TextTemplate | None]:
    kaggle = info.extra.get("kaggle")
    if kaggle:
        return TargetSpec.from_dict(kaggle["target"]), TextTemplate.from_dict(kaggle["template"])
    # A model not trained from a table (e.g. `mlxbert glue finetune`, `mlxbert demo`).
    task = info.head_task
    name = "label" if task != "regression" else str(info.task or "value")
    labels = None if task == "regression" else info.label_names()
    return TargetSpec([name], task, labels=labels), None


def load_model(path: str | Path) -> LoadedModel:
    """Load one model folder with a clear error when a file is missing or broken."""
    folder = Path(path)
    try:
        model, tokenizer, info = open_task_model(folder)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot load model folder {folder}: {exc}") from None
    spec, template = _spec_from_info(info)
    return LoadedModel(folder, model, tokenizer, info, spec, template)


def _check_compatible(models: Sequence[LoadedModel]) -> TargetSpec:
    first = models[0].spec
    for m in models[1:]:
        same = (m.spec.task, m.spec.labels, m.spec.columns) == (
            first.task,
            first.labels,
            first.columns,
        )
        if not same:
            raise InputError(
                f"models predict different things: {models[0].path} ({first.task} "
                f"{first.columns}) vs {m.path} ({m.spec.task} {m.spec.columns}); an ensemble "
                "needs models of the same targets and labels"
            )
    return first


def predict_frame(
    models: Sequence[LoadedModel],
    frame: pd.DataFrame,
    *,
    ensemble: str = "mean",
    weights: Sequence[float] | None = None,
    text: str | None = None,
    reporter: Reporter | None = None,
    batch_size: int = 64,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(decoded predictions, one column per target; combined raw predictions).

    ``text`` names the input column for models that have no table template.
    """
    reporter = reporter or Reporter()
    spec = _check_compatible(models)
    where = frame.attrs.get("source", "the input")
    raws = []
    with reporter.bar("predict", len(models)) as bar:
        for m in models:
            if m.template is not None:
                texts = m.template.render(frame, where)
            elif text is not None:
                texts = TextTemplate(text_columns=[text]).render(frame, where)
            else:
                raise InputError(
                    f"{m.path} was not trained from a table (it has no text template); "
                    "name the input's text column with --text"
                )
            raws.append(
                predict_raw(
                    m.model,
                    m.tokenizer,
                    texts,
                    task=m.spec.task,
                    max_length=m.max_length,
                    batch_size=batch_size,
                )
            )
            bar.advance(1, model=m.path.name)
    combined, threshold = combine(raws, method=ensemble, weights=weights, task=spec.task)
    decoded = spec.decode(combined, threshold=0.5 if threshold is None else threshold)
    return decoded, combined


def predict_file(
    model_paths: Sequence[str | Path],
    input_path: str | Path | pd.DataFrame,
    output_path: str | Path,
    *,
    id_col: str | None = None,
    sample_submission: str | Path | None = None,
    ensemble: str = "mean",
    weights: Sequence[float] | None = None,
    text: str | None = None,
    proba: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """``mlxbert predict``: write predictions for ``input_path`` to ``output_path``
    (atomically). With ``sample_submission`` the output has its columns and id order; the id
    column defaults to the sample's first column. ``proba`` adds the raw probabilities."""
    dirs = resolve_model_dirs(model_paths)
    sample = None
    if sample_submission is not None:
        sample = read_table(sample_submission, what="sample submission", keep_text=[])
        id_col = id_col or str(sample.columns[0])
        sample = read_table(sample_submission, what="sample submission", keep_text=[id_col])
    keep = [id_col] if id_col else []
    if isinstance(input_path, pd.DataFrame):
        frame = input_path
    else:
        frame = read_table(input_path, keep_text=keep, what="input")
    if id_col is not None:
        if id_col not in frame.columns:
            raise missing_columns_error([id_col], frame.columns, f"input {input_path}")
        check_unique_ids(frame[id_col], f"input {input_path}")
    models = [load_model(d) for d in dirs]
    decoded, combined = predict_frame(
        models, frame, ensemble=ensemble, weights=weights, text=text, reporter=reporter
    )
    parts = [frame[[id_col]].reset_index(drop=True)] if id_col else []
    parts.append(decoded)
    if proba and models[0].spec.task != "regression":
        parts.append(models[0].spec.raw_frame(combined))
    table = pd.concat(parts, axis=1)
    if sample is not None:
        table = align_to_sample(table, sample, id_col)
    write_table(table, output_path)
    return {"rows": len(table), "models": [str(d) for d in dirs], "output": str(output_path)}


__all__ = ["LoadedModel", "load_model", "predict_file", "predict_frame", "resolve_model_dirs"]
