"""Training from a table: hold-out validation or K-fold cross-validation, out-of-fold
predictions, resumable runs, ``metrics.json``.

Output folder::

    DIR/metrics.json        scores (validation, or CV over the out-of-fold predictions plus
                            the per-fold mean and spread), settings, the model folders
    DIR/model/              hold-out: the model folder
    DIR/fold-1/ … fold-K/   CV: one complete model folder per fold (together: an ensemble)
    DIR/oof.csv             CV: out-of-fold predictions of every training row
    DIR/valid_predictions.csv   hold-out: predictions on the validation rows
    DIR/_work/              logs and checkpoints (what ``resume`` continues from)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import read_json, write_json
from .errors import InputError
from .forecasting import train_forecaster
from .outputs import check_output_dir, claimed_dir
from .progress import Reporter
from .scoring import primary_metric, score
from .splits import holdout_split, make_folds
from .submission import check_unique_ids
from .tables import read_table, require_columns, write_table
from .targets import TargetSpec
from .template import TextTemplate, default_template
from .thresholds import fit_thresholds
from .timeseries import TimeSeriesSpec, windows
from .training import FitConfig, fit_model, maybe_simulate_kill

WORK = "_work"


@dataclass
class FoldData:
    """The training rows of one CV fold, as a :data:`FoldTrainHook` sees them: the fold
    (0-based; its validation rows are ``frame`` rows where ``fold_of == fold``, their texts
    ``valid_texts``), the indices of its training rows in ``frame``, their texts and encoded
    targets."""

    fold: int
    rows: np.ndarray
    texts: list[str]
    y: np.ndarray
    valid_texts: list[str]
    frame: pd.DataFrame
    fold_of: np.ndarray
    spec: TargetSpec
    output: Path


#: Changes one fold's training rows before its fit: returns ``(texts, targets)`` (rows added,
#: as pseudo-labelling does, or targets replaced, as distillation does). Validation rows and
#: the CV score are never touched.
FoldTrainHook = Callable[[FoldData], tuple[list[str], np.ndarray]]

#: Called after each fold with the fold count done and the CV metrics over the out-of-fold
#: rows predicted so far (a search reports them to prune a bad trial early).
FoldEndHook = Callable[[int, dict[str, float]], None]


def _as_frame(data: pd.DataFrame | str | Path, what: str, keep_text: Sequence[str] = ()):
    if isinstance(data, pd.DataFrame):
        if len(data) == 0:
            raise InputError(f"the {what} DataFrame has no rows")
        return data
    return read_table(data, keep_text=keep_text, what=what)


def _prediction_table(frame, spec, raw, id_col, extra=None, threshold=None):
    cut = 0.5 if threshold is None else np.asarray(threshold)
    decoded = spec.decode(raw, threshold=cut).add_prefix("pred_")
    parts = []
    if id_col is not None:
        parts.append(frame[[id_col]].reset_index(drop=True))
    parts.append(pd.DataFrame(extra or {}))
    parts.append(frame[spec.columns].reset_index(drop=True))
    parts += [decoded, spec.raw_frame(raw)]
    return pd.concat([p for p in parts if p.shape[1]], axis=1)


def _settings(spec, template, config, mode, folds, n_rows, id_col, group_col) -> dict:
    return {
        "mode": mode,
        "folds": folds,
        "rows": n_rows,
        "target": spec.to_dict(),
        "template": template.to_dict(),
        "config": config.to_dict(),
        "id_col": id_col,
        "group_col": group_col,
    }


def _claim_run(output: Path, settings: dict) -> None:
    """Inside a claimed output folder: continue a run of the same settings, or start one."""
    run_file = output / WORK / "run.json"
    previous = read_json(run_file)
    if previous is None:
        if any(output.iterdir()):
            raise InputError(
                f"--resume: {output} holds no `mlxbert train` run to continue; choose an empty "
                "folder, or --overwrite to replace what is there"
            )
        write_json(run_file, settings)
        return
    if json.loads(json.dumps(settings)) != previous:
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        raise InputError(
            f"--resume: {output} holds a run with other settings ({', '.join(changed)}); "
            "use the same flags, or --overwrite to start again"
        )


def train_table(
    train: pd.DataFrame | str | Path,
    *,
    target: str | Sequence[str],
    output: str | Path,
    text: Sequence[str] = (),
    features: Sequence[str] | None = None,
    template: str | TextTemplate | None = None,
    transforms: dict[str, list[str]] | None = None,
    task: str = "auto",
    label_sep: str | None = None,
    target_transform: str | None = None,
    valid: pd.DataFrame | str | Path | None = None,
    valid_fraction: float = 0.1,
    folds: int | None = None,
    group_col: str | None = None,
    id_col: str | None = None,
    exclude: Sequence[str] = (),
    max_rows: int | None = None,
    config: FitConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    time_col: str | None = None,
    horizon: int = 1,
    history: int = 0,
    fold_train: FoldTrainHook | None = None,
    on_fold_end: FoldEndHook | None = None,
) -> dict[str, Any]:
    """Train on a table; returns (and writes) ``metrics.json``'s content.

    ``task="timeseries"`` forecasts ``target`` ``horizon`` steps ahead along ``time_col``
    (one series per ``group_col`` value) from each row's text and ``history`` past values,
    validated on the last ``valid_fraction`` of every series (see
    :mod:`mlxbert_kaggle.timeseries`).

    Hold-out validation on ``valid`` (a table) or on a ``valid_fraction`` split, or K-fold CV
    with ``folds`` (stratified by the target, grouped by ``group_col``). See the module doc
    for the files written; ``resume`` continues an interrupted run (finished folds are kept,
    an unfinished one continues from its last epoch checkpoint).

    ``fold_train`` (CV only) changes each fold's training rows (see :data:`FoldTrainHook`);
    ``on_fold_end`` sees the running CV score after each fold (hold-out: once, at the end).
    """
    if fold_train is not None and not folds:
        raise InputError("this needs cross-validation: give --folds K (K >= 2)")
    reporter = reporter or Reporter()
    config = config or FitConfig()
    started = time.perf_counter()
    check_output_dir(output, overwrite=overwrite, resume=resume, resumable=True)
    targets = [target] if isinstance(target, str) else list(target)
    keep_text = [c for c in (id_col, group_col) if c]
    frame = _as_frame(train, "training", keep_text)
    source = frame.attrs.get("source", "the training table")
    require_columns(frame, [*targets, *text, *(features or []), *keep_text, *exclude], source)
    if task == "timeseries":
        if folds or valid is not None:
            raise InputError(
                "a time series is validated on the last rows of each series "
                "(--valid-fraction); --folds and --valid do not apply"
            )
        if time_col is None or len(targets) != 1:
            raise InputError("--task timeseries needs one --target and --time-col")
        ts = TimeSeriesSpec(targets[0], time_col, group_col, horizon, history)
        tmpl = (
            template
            if isinstance(template, TextTemplate)
            else default_template(
                frame,
                targets=targets,
                text_columns=text,
                feature_columns=features,
                exclude=[*exclude, *keep_text],
                format=template,
            )
        )
        windows(frame, ts, source)  # checked before anything is written
        with claimed_dir(output, overwrite=overwrite, resume=resume, resumable=True):
            _claim_run(
                Path(output),
                {
                    "timeseries": ts.to_dict(),
                    "config": config.to_dict(),
                    "template": tmpl.to_dict(),
                    "rows": len(frame),
                },
            )
            return train_forecaster(
                frame,
                spec=ts,
                template=tmpl,
                config=config,
                output=Path(output),
                valid_fraction=valid_fraction,
                resume=resume,
                reporter=reporter,
                source=source,
            )
    spec = TargetSpec.infer(
        frame, targets, task=task, label_sep=label_sep, transform=target_transform
    )
    frame = spec.clean(frame)
    dropped = spec.dropped_rows
    if dropped:
        reporter.log(f"dropped {dropped} row(s) whose target is missing")
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=config.seed).sort_index()
        frame = frame.reset_index(drop=True)
    if isinstance(template, TextTemplate):
        tmpl = template
    else:
        tmpl = default_template(
            frame,
            targets=targets,
            text_columns=text,
            feature_columns=features,
            exclude=[*exclude, *keep_text],
            format=template,
        )
    if transforms:
        tmpl.transforms = {**tmpl.transforms, **transforms}
    texts = tmpl.render(frame, source)
    y = spec.encode(frame, source)
    if id_col is not None:
        check_unique_ids(frame[id_col], source)

    vframe = vtexts = vy = None
    if valid is not None:
        if folds:
            raise InputError("use either a validation table or folds, not both")
        vframe = _as_frame(valid, "validation", keep_text)
        vsource = vframe.attrs.get("source", "the validation table")
        vframe = spec.clean(vframe)
        if spec.dropped_rows:
            reporter.log(f"validation: dropped {spec.dropped_rows} row(s) without target")
        # Checked before anything is written: a bad validation file leaves no output.
        vtexts, vy = tmpl.render(vframe, vsource), spec.encode(vframe, vsource)

    output = Path(output)
    mode = "cv" if folds else "holdout"
    settings = _settings(spec, tmpl, config, mode, folds, len(frame), id_col, group_col)
    if valid is not None:
        settings["valid"] = str(valid) if not isinstance(valid, pd.DataFrame) else "DataFrame"
    else:
        settings["valid_fraction"] = valid_fraction if mode == "holdout" else None
    prepared = _Prepared(frame, texts, y, spec, tmpl, dropped, vframe, vtexts, vy)
    # A failed run removes what it wrote (an interrupt keeps it for --resume).
    with claimed_dir(output, overwrite=overwrite, resume=resume, resumable=True):
        _claim_run(output, settings)
        return _run(
            prepared,
            config,
            mode,
            folds,
            group_col,
            id_col,
            valid_fraction,
            output,
            resume,
            reporter,
            started,
            (fold_train, on_fold_end),
        )


@dataclass
class _Prepared:
    """A training table ready to train on: rows, their texts and encoded targets."""

    frame: pd.DataFrame
    texts: list[str]
    y: np.ndarray
    spec: TargetSpec
    template: TextTemplate
    dropped: int
    vframe: pd.DataFrame | None
    vtexts: list[str] | None
    vy: np.ndarray | None


def _run(
    prep: _Prepared,
    config,
    mode,
    folds,
    group_col,
    id_col,
    valid_fraction,
    output,
    resume,
    reporter,
    started,
    hooks=(None, None),
):
    frame, texts, y, spec, tmpl = prep.frame, prep.texts, prep.y, prep.spec, prep.template
    vframe, vtexts, vy, dropped = prep.vframe, prep.vtexts, prep.vy, prep.dropped
    common = dict(spec=spec, template=tmpl, config=config, reporter=reporter, resume=resume)
    reporter.log(
        f"task {spec.task} on {spec.columns} ({len(frame)} rows"
        + (f", labels {spec.labels}" if spec.labels and len(spec.labels) <= 10 else "")
        + f"); text: {tmpl.describe()!r}"
    )
    example = texts[0] if len(texts[0]) <= 200 else texts[0][:197] + "..."
    reporter.log(f"first row as text: {example}")

    if mode == "cv":
        result = _cross_validate(frame, texts, y, folds, group_col, id_col, output, common, hooks)
    else:
        if vframe is not None:
            tframe, ttexts, ty = frame, texts, y
        else:
            mask = holdout_split(
                len(frame), valid_fraction, stratify=spec.stratify_values(frame), seed=config.seed
            )
            vframe = frame[mask].reset_index(drop=True)
            tframe = frame[~mask].reset_index(drop=True)
            vtexts = [t for t, m in zip(texts, mask) if m]
            ttexts = [t for t, m in zip(texts, mask) if not m]
            vy, ty = y[mask], y[~mask]
        del tframe
        log = fit_model(
            ttexts,
            ty,
            vtexts,
            vy,
            model_dir=output / "model",
            work_dir=output / WORK / "model",
            label="train",
            meta={"fold": None},
            **common,
        )
        raw = log["valid_predictions"]
        table = _prediction_table(vframe, spec, raw, id_col, threshold=log["threshold"])
        write_table(table, output / "valid_predictions.csv")
        result = {
            "models": ["model"],
            "metrics": log["best"]["metrics"],
            "threshold": log["threshold"],
            "best_epoch": log["best"]["epoch"],
            "epochs": log["epochs"],
            "rows": {"train": len(ttexts), "valid": len(vtexts)},
        }
        if hooks[1] is not None:
            hooks[1](1, dict(result["metrics"]))
    metric = config.metric or primary_metric(spec)
    summary = {
        "mode": mode,
        "metric": metric,
        "score": (result.get("cv") or result["metrics"])[metric],
        **result,
        "target": spec.to_dict(),
        "template": tmpl.to_dict(),
        "config": config.to_dict(),
        "dropped_target_rows": dropped,
        "seconds": time.perf_counter() - started,
        "finished": True,
    }
    write_json(output / "metrics.json", summary)
    return summary


def _fold_thresholds(thresholds: list, fold_of: np.ndarray, oof: np.ndarray) -> np.ndarray | None:
    """Each out-of-fold row's decision threshold (its fold model's), shaped like one row's
    predictions; None when the folds fitted none."""
    if not thresholds or any(t is None for t in thresholds):
        return None
    row = oof.shape[1:] if oof.ndim > 1 and oof.shape[1] > 1 else ()
    table = np.stack([np.broadcast_to(np.asarray(t, np.float64), row) for t in thresholds])
    return table[fold_of].reshape(len(oof), *row) if row else table[fold_of].reshape(-1)


def _running_score(spec, y, oof, fold_of, thresholds) -> dict[str, float]:
    """CV metrics over the out-of-fold rows of the folds finished so far (each row cut at
    its fold model's threshold, as the final CV score is)."""
    done = fold_of < len(thresholds)
    per_row = _fold_thresholds(thresholds, fold_of[done], oof[done])
    return score(spec, y[done], oof[done], threshold=0.5 if per_row is None else per_row)


def _cross_validate(
    frame, texts, y, n_folds, group_col, id_col, output, common, hooks=(None, None)
):
    spec: TargetSpec = common["spec"]
    config: FitConfig = common["config"]
    reporter: Reporter = common["reporter"]
    groups = frame[group_col].astype(str).to_numpy() if group_col else None
    fold_of = make_folds(
        len(frame), n_folds, stratify=spec.stratify_values(frame), groups=groups, seed=config.seed
    )
    folds_file = output / WORK / "folds.json"
    saved = read_json(folds_file)
    if saved is not None and saved != fold_of.tolist():
        raise InputError(f"{output}: the folds of the saved run differ from this data; --overwrite")
    write_json(folds_file, fold_of.tolist())
    oof: np.ndarray | None = None
    thresholds: list = []
    per_fold = []
    texts_arr = np.asarray(texts, dtype=object)
    fold_train, on_fold_end = hooks
    for k in range(n_folds):
        valid_mask = fold_of == k
        fold_config = FitConfig(**{**config.to_dict(), "seed": config.seed + k})
        train_texts, train_y = texts_arr[~valid_mask].tolist(), y[~valid_mask]
        if fold_train is not None:
            rows = np.flatnonzero(~valid_mask)
            valid_texts = texts_arr[valid_mask].tolist()
            data = FoldData(
                k, rows, train_texts, train_y, valid_texts, frame, fold_of, spec, output
            )
            train_texts, train_y = fold_train(data)
        log = fit_model(
            train_texts,
            train_y,
            texts_arr[valid_mask].tolist(),
            y[valid_mask],
            spec=spec,
            template=common["template"],
            config=fold_config,
            model_dir=output / f"fold-{k + 1}",
            work_dir=output / WORK / f"fold-{k + 1}",
            reporter=reporter,
            label=f"fold {k + 1}/{n_folds}",
            meta={"fold": k + 1},
            resume=common["resume"],
        )
        raw = np.asarray(log["valid_predictions"])
        if oof is None:
            oof = np.zeros((len(frame), *raw.shape[1:]), dtype=np.float64)
        oof[valid_mask] = raw
        per_fold.append(
            {
                "fold": k + 1,
                "rows": int(valid_mask.sum()),
                "best_epoch": log["best"]["epoch"],
                "metrics": log["best"]["metrics"],
                "threshold": log["threshold"],
            }
        )
        thresholds.append(log["threshold"])
        if on_fold_end is not None:
            on_fold_end(k + 1, _running_score(spec, y, oof, fold_of, thresholds))
        maybe_simulate_kill("folds", k + 1)
    assert oof is not None
    metric = config.metric or primary_metric(spec)
    # Each row's out-of-fold decision is its fold model's, at that model's own threshold;
    # the fold ensemble gets one threshold fitted on every out-of-fold prediction.
    per_row = _fold_thresholds(thresholds, fold_of, oof)
    cv_metrics = score(spec, y, oof, threshold=0.5 if per_row is None else per_row)
    threshold = None
    if per_row is not None:
        cv_metrics[f"{metric}_at_0.5"] = score(spec, y, oof)[metric]
        threshold = fit_thresholds(spec, y, oof, metric)
    shared = set.intersection(*(set(f["metrics"]) for f in per_fold))
    names = [n for n in per_fold[0]["metrics"] if n in shared]
    mean = {n: float(np.mean([f["metrics"][n] for f in per_fold])) for n in names}
    std = {n: float(np.std([f["metrics"][n] for f in per_fold])) for n in names}
    extra = {"fold": fold_of + 1}
    table = _prediction_table(frame, spec, oof, id_col, extra=extra, threshold=per_row)
    write_table(table, output / "oof.csv")
    np.save(output / WORK / "oof.npy", oof)
    reporter.log(
        f"CV {metric}: {cv_metrics[metric]:.4f} (folds {mean[metric]:.4f} ± {std[metric]:.4f})"
    )
    return {
        "models": [f"fold-{k + 1}" for k in range(n_folds)],
        "cv": cv_metrics,
        "metrics": cv_metrics,
        "threshold": threshold,
        "fold_mean": mean,
        "fold_std": std,
        "folds": per_fold,
        "rows": {"train": len(frame)},
    }


__all__ = ["FoldData", "FoldEndHook", "FoldTrainHook", "train_table"]
