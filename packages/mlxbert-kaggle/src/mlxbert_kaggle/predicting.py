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

from mlxbert_glue import TaskModelInfo, get_preset, is_model_folder, open_model

from .atomic import read_json
from .ensemble import check_method, check_weights, combine
from .errors import InputError, missing_columns_error
from .forecasting import forecast_frame, is_forecaster
from .long_text import check_mode, long_text_raw
from .outputs import check_output_file
from .progress import Reporter
from .submission import align_to_sample, check_unique_ids
from .tables import read_table, write_table
from .targets import TargetSpec
from .template import TextTemplate
from .thresholds import combined_threshold
from .timeseries import TimeSeriesSpec
from .training import check_dtype, predict_raw


def _is_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))


def _expand(path: Path) -> list[Path]:
    """The model folders one ``--model`` path stands for."""
    if not path.exists():
        if _is_hub_id(str(path)) or get_preset(str(path)) is not None:
            return [path]  # a hub id or preset: what Classifier opens
        raise InputError(f"model path {path} does not exist")
    if (path / "mlxbert.json").is_file() or (path / "config.json").is_file():
        return [path]  # an mlxbert model folder, or a reference checkpoint's folder
    metrics = read_json(path / "metrics.json") if path.is_dir() else None
    if metrics and metrics.get("models"):
        missing = [m for m in metrics["models"] if not (path / m / "mlxbert.json").is_file()]
        if missing:
            raise InputError(
                f"{path}/metrics.json lists model folder(s) {missing} that are missing or "
                "incomplete; the training run did not finish (continue it with --resume)"
            )
        return [path / m for m in metrics["models"]]
    raise InputError(
        f"{path} is neither a model folder (no mlxbert.json) nor a training output folder "
        "(no metrics.json); point --model at what `mlxbert train` wrote"
    )


def resolve_model_groups(
    paths: Sequence[str | Path], *, each_fold: bool = False
) -> list[list[Path]]:
    """Model folders behind ``paths``, one group per path: a training output folder's models
    (its CV folds) form one group, averaged before the ensemble; ``each_fold`` makes every
    fold model a group of its own."""
    groups = [_expand(Path(p)) for p in paths]
    if not groups:
        raise InputError("give at least one --model")
    if each_fold:
        groups = [[d] for group in groups for d in group]
    return groups


def resolve_model_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Model folders behind ``paths`` (training output folders expand to their models)."""
    return [d for group in resolve_model_groups(paths) for d in group]


@dataclass
class LoadedModel:
    path: Path
    model: Any
    tokenizer: Any
    info: TaskModelInfo
    spec: TargetSpec
    template: TextTemplate | None

    #: The decision threshold(s) its predictions are cut at (binary, multilabel), or None.
    threshold: float | list[float] | None = None

    @property
    def max_length(self) -> int:
        return self.info.tokens

    @property
    def meta(self) -> dict[str, Any]:
        """The folder's ``mlxbert.json`` as a dict."""
        return self.info.to_meta()


def _spec_from_info(info: TaskModelInfo) -> tuple[TargetSpec, TextTemplate | None]:
    kaggle = info.extra.get("kaggle")
    if kaggle and "timeseries" in kaggle:  # a forecaster: its outputs are the horizon's steps
        columns = TimeSeriesSpec.from_dict(kaggle["timeseries"]).output_columns
        return TargetSpec(columns, "regression"), TextTemplate.from_dict(kaggle["template"])
    if kaggle:
        return TargetSpec.from_dict(kaggle["target"]), TextTemplate.from_dict(kaggle["template"])
    # A model not trained from a table (e.g. `mlxbert glue finetune`, `mlxbert demo`).
    task = info.head_task
    name = "label" if task != "regression" else str(info.task or "value")
    labels = None if task == "regression" else info.label_names()
    return TargetSpec([name], task, labels=labels), None


def _own_threshold(info: TaskModelInfo) -> float | list[float] | None:
    fitted = (info.head or {}).get("fitted") or {}
    return fitted.get("threshold", fitted.get("thresholds"))


def load_model(
    path: str | Path,
    *,
    threshold: float | list[float] | None = None,
    dtype: str | None = None,
) -> LoadedModel:
    """Load one model (an mlxbert folder, or anything ``Classifier`` opens) with a clear error
    when a file is missing or broken. ``threshold``: the decision threshold to cut its
    predictions at (default: the one fitted into the model); ``dtype``: compute in
    float32, bfloat16 or float16 (default: as saved)."""
    folder = Path(path)
    try:
        model, tokenizer, info = open_model(path, dtype=dtype)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot load model {path}: {exc}") from None
    spec, template = _spec_from_info(info)
    own = _own_threshold(info) if threshold is None else threshold
    return LoadedModel(folder, model, tokenizer, info, spec, template, threshold=own)


def run_threshold(group: Sequence[Path]) -> float | list[float] | None:
    """The threshold a training run fitted for exactly these model folders together (a CV
    run's out-of-fold threshold for its fold ensemble), or None."""
    parents = {Path(d).parent for d in group}
    if len(parents) != 1:
        return None
    metrics = read_json(parents.pop() / "metrics.json") or {}
    if sorted(metrics.get("models") or []) != sorted(Path(d).name for d in group):
        return None
    return metrics.get("threshold")


def load_group(group: Sequence[Path], *, dtype: str | None = None) -> list[LoadedModel]:
    """The models of one ``--model`` path, cut at the run's threshold when it has one."""
    shared = run_threshold(group)
    return [load_model(d, threshold=shared, dtype=dtype) for d in group]


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


def _texts_for(m: LoadedModel, frame: pd.DataFrame, text: str | None, where: str) -> list[str]:
    if m.template is not None:
        return m.template.render(frame, where)
    if text is not None:
        return TextTemplate(text_columns=[text]).render(frame, where)
    why = "it was not trained from a table" if is_model_folder(m.path) else "no mlxbert.json"
    raise InputError(
        f"{m.path} has no text template ({why}); name the input's text column with --text"
    )


def predict_frame(
    models: Sequence[LoadedModel | Sequence[LoadedModel]],
    frame: pd.DataFrame,
    *,
    ensemble: str = "mean",
    weights: Sequence[float] | None = None,
    text: str | None = None,
    reporter: Reporter | None = None,
    batch_size: int = 64,
    threshold: float | None = None,
    long_text: str | None = None,
    tta: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(decoded predictions, one column per target; combined raw predictions).

    ``models`` holds models or groups of models (a CV run's folds): a group's raw
    predictions are averaged first, then groups are combined by ``ensemble`` with one
    ``weights`` entry per group. Binary and multilabel predictions are cut at the models'
    fitted thresholds (their weighted mean), or at ``threshold`` when given. ``text`` names
    the input column for models that have no table template. ``long_text`` (``head``,
    ``head-tail``, ``windows``) predicts texts longer than a model's maximum length that way,
    ``tta`` averages it with the plain prediction (see :mod:`mlxbert_kaggle.long_text`).
    """
    check_mode(long_text, tta)
    reporter = reporter or Reporter()
    groups = [list(g) if isinstance(g, (list, tuple)) else [g] for g in models]
    flat = [m for g in groups for m in g]
    if any(is_forecaster(m.info) for m in flat):
        return _forecasts(flat, frame, batch_size)
    spec = _check_compatible(flat)
    check_weights(weights, len(groups))
    check_method(ensemble, spec.task)
    where = frame.attrs.get("source", "the input")
    raws = []
    with reporter.bar("predict", len(flat)) as bar:
        for group in groups:
            parts = []
            for m in group:
                texts = _texts_for(m, frame, text, where)
                if long_text is not None:
                    parts.append(
                        long_text_raw(
                            m.model,
                            m.tokenizer,
                            texts,
                            task=m.spec.task,
                            max_length=m.max_length,
                            mode=long_text,
                            tta=tta,
                            batch_size=batch_size,
                        )
                    )
                    bar.advance(1, model=m.path.name)
                    continue
                parts.append(
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
            raws.append(np.mean(parts, axis=0))
    combined, rank_cut = combine(raws, method=ensemble, weights=weights, task=spec.task)
    if threshold is not None:
        cut = threshold
    elif ensemble == "rank":
        cut = 0.5 if rank_cut is None else rank_cut
    else:
        w = check_weights(weights, len(groups))
        members = [[m.threshold for m in group] for group in groups]
        cut = combined_threshold(
            [None if None in t else np.mean(np.asarray(t, np.float64), axis=0) for t in members],
            w,
        )
    decoded = spec.decode(combined, threshold=cut)
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
    overwrite: bool = False,
    each_fold: bool = False,
    threshold: float | None = None,
    long_text: str | None = None,
    tta: bool = False,
    dtype: str | None = None,
) -> dict[str, Any]:
    """``mlxbert predict``: write predictions for ``input_path`` to ``output_path``
    (atomically; an existing file only with ``overwrite``). With ``sample_submission`` the
    output has its columns and id order; the id column defaults to the sample's first column.
    ``proba`` adds the raw probabilities. ``weights``: one per model path (a CV run's folds
    are averaged into one model first, unless ``each_fold``). Everything is checked before
    any model runs. ``long_text`` / ``tta``: as in :func:`predict_frame`. ``dtype``: the
    models compute in float32, bfloat16 or float16 (default: as saved)."""
    check_output_file(output_path, overwrite=overwrite)
    check_dtype(dtype)
    check_mode(long_text, tta)
    groups = resolve_model_groups(model_paths, each_fold=each_fold)
    check_weights(weights, len(groups))
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
    models = [load_group(group, dtype=dtype) for group in groups]
    flat = [m for group in models for m in group]
    if any(is_forecaster(m.info) for m in flat):
        return _write_forecasts(flat, frame, output_path, id_col, sample, batch_size=64)
    spec = _check_compatible(flat)
    check_method(ensemble, spec.task)
    if sample is not None:  # ids and columns must fit the sample before any model runs
        skeleton = frame[[id_col]].assign(**{c: 0 for c in spec.columns})
        align_to_sample(skeleton, sample, id_col)
    decoded, combined = predict_frame(
        models,
        frame,
        ensemble=ensemble,
        weights=weights,
        text=text,
        reporter=reporter,
        threshold=threshold,
        long_text=long_text,
        tta=tta,
    )
    parts = [frame[[id_col]].reset_index(drop=True)] if id_col else []
    parts.append(decoded)
    if proba and spec.task != "regression":
        parts.append(spec.raw_frame(combined))
    table = pd.concat(parts, axis=1)
    if sample is not None:
        table = align_to_sample(table, sample, id_col)
    write_table(table, output_path)
    dirs = [str(m.path) for group in models for m in group]
    return {"rows": len(table), "models": dirs, "output": str(output_path)}


def _forecasts(models, frame, batch_size) -> tuple[pd.DataFrame, np.ndarray]:
    """(time, series and one column per forecast step; the forecasts)."""
    if not all(is_forecaster(m.info) for m in models):
        raise InputError("forecasting models cannot be mixed with other models in one ensemble")
    where = frame.attrs.get("source", "the input")
    table = forecast_frame(models, frame, where, batch_size=batch_size)
    steps = [c for c in table.columns if c not in frame.columns]
    return table, table[steps].to_numpy()


def _write_forecasts(models, frame, output_path, id_col, sample, batch_size) -> dict[str, Any]:
    if sample is not None:
        raise InputError("a forecast has one column per step; --sample-submission does not apply")
    table, _ = _forecasts(models, frame, batch_size)
    if id_col is not None:
        table.insert(0, id_col, frame[id_col].to_numpy())
    write_table(table, output_path)
    dirs = [str(m.path) for m in models]
    return {"rows": len(table), "models": dirs, "output": str(output_path)}


__all__ = [
    "LoadedModel",
    "load_model",
    "predict_file",
    "predict_frame",
    "resolve_model_dirs",
    "resolve_model_groups",
]
