"""Training and predicting forecasts from a table (see :mod:`mlxbert_kaggle.timeseries`),
through the task-model layer's fit loop like every other task.

Output folder of a run (``mlxbert train --task timeseries``)::

    DIR/metrics.json            MAPE (selection), RMSE, MAE, directional accuracy, settings
    DIR/model/                  the model folder (its record holds the forecasting set-up)
    DIR/valid_predictions.csv   the validation rows: time, series, truth and forecasts
    DIR/_work/                  the fit's log and checkpoints
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlxbert_glue import (
    Examples,
    Reporter,
    StaleRunError,
    create_task_model,
    fit,
    pad_id_of,
    predict_logits,
    tokenize_texts,
)

from .atomic import write_json
from .errors import InputError
from .tables import write_table
from .template import TextTemplate
from .timeseries import PRIMARY, TimeSeriesSpec, holdout_by_time, score_forecasts, windows
from .training import KAGGLE_META_VERSION, FitConfig, maybe_simulate_kill

WORK = "_work"


def _examples(texts: list[str], win, rows: np.ndarray, with_targets: bool) -> Examples:
    return Examples(
        [texts[i] for i in rows],
        labels=win.targets[rows].astype(np.float32) if with_targets else None,
        extra={"history": win.history[rows].astype(np.float32)},
    )


def _table(frame: pd.DataFrame, spec: TimeSeriesSpec, rows: np.ndarray, forecasts, truth=None):
    keep = [c for c in (spec.time_col, spec.group_col) if c]
    parts = [frame.iloc[rows][keep].reset_index(drop=True)]
    if truth is not None:
        parts.append(pd.DataFrame(truth, columns=[f"true_{c}" for c in spec.output_columns]))
    parts.append(pd.DataFrame(forecasts, columns=spec.output_columns))
    return pd.concat(parts, axis=1)


def train_forecaster(
    frame: pd.DataFrame,
    *,
    spec: TimeSeriesSpec,
    template: TextTemplate,
    config: FitConfig,
    output: Path,
    valid_fraction: float,
    resume: bool,
    reporter: Reporter,
    source: str,
) -> dict[str, Any]:
    """Fit a forecaster on ``frame`` into ``output`` (a claimed folder); returns the
    summary written to ``metrics.json``."""
    started = time.perf_counter()
    win = windows(frame, spec, source)
    texts = template.render(frame, source)
    valid = holdout_by_time(win, valid_fraction)
    train_rows = np.flatnonzero(win.complete & ~valid)
    valid_rows = np.flatnonzero(valid)
    if len(train_rows) < 2 or len(valid_rows) < 1:
        raise InputError(
            f"{source}: {int(win.complete.sum())} row(s) have a full {spec.horizon}-step "
            "horizon; need at least 3 (2 to train, 1 to validate): use a shorter --horizon "
            "or more rows"
        )
    reporter.log(
        f"forecasting {spec.target!r} {spec.horizon} step(s) ahead from {spec.history} past "
        f"value(s) and the text; {len(train_rows)} training, {len(valid_rows)} validation rows "
        "(the last of each series)"
    )
    valid_ex = _examples(texts, win, valid_rows, True)

    def scorer(head, outputs: np.ndarray) -> dict[str, float]:
        forecast = head.predict(outputs)
        return score_forecasts(valid_ex.labels, forecast, win.last[valid_rows])

    meta = {
        "kaggle": {
            "version": KAGGLE_META_VERSION,
            "timeseries": spec.to_dict(),
            "template": template.to_dict(),
        }
    }
    options = {"horizon": spec.horizon, "history_length": spec.history}
    try:
        result = fit(
            lambda: create_task_model(
                config.model,
                "timeseries",
                head_options=options,
                lora=config.lora,
                quantize=config.quantize,
                pooling=config.pooling,
                max_length=config.max_length,
                text_template=template.describe(),
                checkpoint=config.checkpoint,
            ),
            _examples(texts, win, train_rows, True),
            valid_ex,
            training=config.training_config(),
            model_dir=output / "model",
            work_dir=output / WORK / "model",
            max_length=config.max_length,
            scorer=scorer,
            metric=PRIMARY,
            greater_is_better=False,
            early_stopping=config.early_stopping,
            eval_batch_size=config.eval_batch_size,
            settings={"fit": config.to_dict(), "timeseries": spec.to_dict()},
            resume=resume,
            reporter=reporter,
            label="train",
            extra=meta,
            on_epoch_end=lambda epoch: maybe_simulate_kill("epochs", epoch),
        )
    except StaleRunError as exc:
        raise InputError(str(exc)) from None
    forecast = result.saved_head().predict(result.valid_outputs)
    table = _table(frame, spec, valid_rows, forecast, truth=valid_ex.labels)
    write_table(table, output / "valid_predictions.csv")
    summary = {
        "mode": "holdout",
        "metric": PRIMARY,
        "score": result.best["metrics"][PRIMARY],
        "models": ["model"],
        "metrics": result.best["metrics"],
        "best_epoch": result.best["epoch"],
        "epochs": result.epochs,
        "rows": {"train": len(train_rows), "valid": len(valid_rows)},
        "timeseries": spec.to_dict(),
        "template": template.to_dict(),
        "config": config.to_dict(),
        "seconds": time.perf_counter() - started,
        "finished": True,
    }
    write_json(output / "metrics.json", summary)
    reporter.log(
        f"validation MAPE {summary['score']:.4f}, directional accuracy "
        f"{summary['metrics']['directional_accuracy']:.3f}"
    )
    return summary


def forecast_frame(models, frame: pd.DataFrame, where: str, batch_size: int = 64) -> pd.DataFrame:
    """Forecasts of every row of ``frame`` (mean over ``models``), with the time and series
    columns."""
    specs = {json_key(m.info.extra["kaggle"]["timeseries"]) for m in models}
    if len(specs) != 1:
        raise InputError("the models forecast different things (target, horizon or history)")
    spec = TimeSeriesSpec.from_dict(models[0].info.extra["kaggle"]["timeseries"])
    win = windows(frame, spec, where)
    rows = np.arange(len(frame))
    forecasts = []
    for m in models:
        texts = m.template.render(frame, where)
        examples = _examples(texts, win, rows, False)
        features = tokenize_texts(m.tokenizer, examples.texts, max_length=m.max_length)
        features["history"] = examples.extra["history"]
        outputs = predict_logits(
            m.model, features, batch_size=batch_size, pad_id=pad_id_of(m.tokenizer)
        )
        forecasts.append(m.model.head.predict(outputs))
    return _table(frame, spec, rows, np.mean(forecasts, axis=0))


def json_key(data: dict[str, Any]) -> str:
    return str(sorted(data.items()))


def is_forecaster(info: Any) -> bool:
    """Whether a model's record says it forecasts a table's series."""
    return "timeseries" in (info.extra.get("kaggle") or {})


__all__ = ["forecast_frame", "is_forecaster", "train_forecaster"]
