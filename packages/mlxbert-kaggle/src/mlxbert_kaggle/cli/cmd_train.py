"""``mlxbert train`` and ``mlxbert predict``."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Annotated

import mlx.core as mx
import typer

from ..cv import train_table
from ..errors import InputError
from ..predicting import predict_file
from ..progress import RichReporter
from ..pseudo import describe_rounds, run_folder, train_pseudo_labelled
from ..stacking import is_stack, predict_stack_file
from ..trackers import tracking_reporter
from ..training import DEFAULT_MODEL, FitConfig
from ._common import console, note, parse_floats, positive, use_device
from .cmd_report import report_after_training

Opt = typer.Option


def _summary_line(summary: dict, output: Path) -> str:
    metric = summary["metric"]
    where = "CV" if summary["mode"] == "cv" else "validation"
    extra = ""
    if summary["mode"] == "cv":
        mean, std = summary["fold_mean"][metric], summary["fold_std"][metric]
        extra = f" (folds {mean:.4f} ± {std:.4f})"
    return (
        f"[bold green]done:[/] {where} {metric} {summary['score']:.4f}{extra}; "
        f"{len(summary['models'])} model folder(s) and metrics.json in {output} "
        f"({summary['seconds']:.0f} s)"
    )


def train(
    train: Annotated[Path, Opt("--train", help="Training table (CSV, TSV, Parquet).")],
    target: Annotated[list[str], Opt("--target", help="Target column (repeat for several).")],
    output: Annotated[Path, Opt("--output", help="Output folder (models, metrics.json).")],
    valid: Annotated[Path | None, Opt("--valid", help="Validation table (hold-out).")] = None,
    text: Annotated[list[str] | None, Opt("--text", help="Free-text column(s).")] = None,
    feature: Annotated[
        list[str] | None, Opt("--feature", help="Tabular column(s) rendered as 'Name: value'.")
    ] = None,
    template: Annotated[
        str | None, Opt("--template", help="Format string over columns, e.g. '{title}: {body}'.")
    ] = None,
    task: Annotated[
        str, Opt(help="auto|binary|multiclass|multilabel|regression|ordinal|timeseries")
    ] = "auto",
    time_col: Annotated[
        str | None, Opt("--time-col", help="timeseries: the column that orders each series.")
    ] = None,
    horizon: Annotated[int, Opt(help="timeseries: steps to forecast from each row on.")] = 1,
    history: Annotated[
        int, Opt(help="timeseries: past values of the series the forecast reads.")
    ] = 0,
    label_sep: Annotated[
        str | None, Opt("--label-sep", help="Separator of a multilabel column.")
    ] = None,
    target_transform: Annotated[
        str | None, Opt("--target-transform", help="log1p: train on log(1+y) (RMSLE).")
    ] = None,
    folds: Annotated[int | None, Opt(help="K-fold cross-validation with K folds.")] = None,
    group_col: Annotated[
        str | None, Opt("--group-col", help="Keep rows of one group in one fold.")
    ] = None,
    id_col: Annotated[str | None, Opt("--id-col", help="Row id column (kept in oof.csv).")] = None,
    exclude: Annotated[
        list[str] | None, Opt("--exclude", help="Column(s) left out of the text.")
    ] = None,
    valid_fraction: Annotated[
        float, Opt("--valid-fraction", help="Hold-out share without --valid/--folds.")
    ] = 0.1,
    model: Annotated[str, Opt(help="Encoder: preset name, folder or hub id.")] = DEFAULT_MODEL,
    checkpoint: Annotated[
        str | None, Opt(help="Checkpoint file, when --model's folder holds several (M2-BERT).")
    ] = None,
    epochs: Annotated[int, Opt(help="Passes over the training rows.")] = 3,
    batch_size: Annotated[int, Opt("--batch-size")] = 32,
    max_length: Annotated[int, Opt("--max-length", help="Tokens per row.")] = 128,
    lr: Annotated[float | None, Opt(help="Peak learning rate (default by method).")] = None,
    lora: Annotated[
        str | None, Opt(help="LoRA preset: efficient|balanced|expressive|qlora.")
    ] = None,
    pooling: Annotated[
        str | None,
        Opt(help="cls/mean/max/attention/weighted_layer (default: the model's own classifier)."),
    ] = None,
    quantize: Annotated[int | None, Opt(help="Quantize the encoder to 4 or 8 bits.")] = None,
    seed: Annotated[int, Opt()] = 0,
    compute_dtype: Annotated[
        str,
        Opt(
            "--precision",
            help="float32, or bfloat16 / float16 compute with float32 master weights (GPU).",
        ),
    ] = "float32",
    early_stopping: Annotated[
        int | None, Opt("--early-stopping", help="Stop after N epochs without improvement.")
    ] = None,
    metric: Annotated[
        str | None, Opt(help="Selection / early-stopping metric (default by task).")
    ] = None,
    fit_threshold: Annotated[
        bool,
        Opt(help="binary/multilabel: fit decision thresholds on the validation predictions."),
    ] = True,
    balance_labels: Annotated[
        bool, Opt(help="multilabel: weigh each label's rare positives up in the loss.")
    ] = True,
    max_rows: Annotated[int | None, Opt("--max-rows", help="Train on a sample of N rows.")] = None,
    resume: Annotated[bool, Opt(help="Continue an interrupted run in --output.")] = False,
    overwrite: Annotated[bool, Opt(help="Replace an existing run in --output.")] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu (default: MLX's).")] = None,
    log_to: Annotated[
        list[str] | None,
        Opt("--log-to", help="Also log scalars to tensorboard, wandb or mlflow (repeatable)."),
    ] = None,
    report: Annotated[
        bool, Opt("--report/--no-report", help="Write OUTPUT/report.html at the end.")
    ] = True,
    lora_rank: Annotated[
        int | None, Opt("--lora-rank", help="Rank of the --lora adapters (alpha = 2 x rank).")
    ] = None,
    head_loss: Annotated[
        str | None, Opt("--head-loss", help="Head loss: bce|ce|focal|mse|mae|huber (by task).")
    ] = None,
    pseudo_label: Annotated[
        Path | None,
        Opt(
            "--pseudo-label",
            help="Unlabelled table: add its confident rows, per fold, and retrain.",
        ),
    ] = None,
    pseudo_threshold: Annotated[
        float, Opt("--pseudo-threshold", help="Confidence a pseudo-labelled row needs.")
    ] = 0.95,
    pseudo_rounds: Annotated[
        int, Opt("--pseudo-rounds", help="Rounds of pseudo-labelling after the first training.")
    ] = 1,
) -> None:
    """Fine-tune an encoder on a table: hold-out or K-fold CV, one model folder per fold."""
    positive(folds, "--folds", minimum=2)
    positive(max_rows, "--max-rows")
    use_device(device)
    if valid is not None and folds:
        raise InputError("use either --valid (hold-out) or --folds (cross-validation)")
    config = FitConfig(
        model=model,
        checkpoint=checkpoint,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        lora=lora,
        pooling=pooling,
        quantize=quantize,
        seed=seed,
        compute_dtype=compute_dtype,
        early_stopping=early_stopping,
        metric=metric,
        fit_threshold=fit_threshold,
        balance_labels=balance_labels,
        lora_rank=lora_rank,
        head_loss=head_loss,
    )
    if config.compute_dtype != "float32" and mx.default_device().type == mx.DeviceType.cpu:
        note(
            f"--precision {compute_dtype} on the CPU: MLX's CPU backend has no fast "
            f"{compute_dtype} products, so this trains much slower than float32"
        )
    reporter = tracking_reporter(
        RichReporter(), log_to, output, name=f"train {output.name}", config=config.to_dict()
    )
    run = train_table
    if pseudo_label is not None:
        run = functools.partial(
            train_pseudo_labelled,
            unlabelled=pseudo_label,
            threshold=pseudo_threshold,
            rounds=pseudo_rounds,
        )
    summary = run(
        train,
        target=target,
        output=output,
        text=text or (),
        features=feature,
        template=template,
        task=task,
        label_sep=label_sep,
        target_transform=target_transform,
        valid=valid,
        valid_fraction=valid_fraction,
        folds=folds,
        group_col=group_col,
        id_col=id_col,
        exclude=exclude or (),
        max_rows=max_rows,
        config=config,
        resume=resume,
        overwrite=overwrite,
        reporter=reporter,
        time_col=time_col,
        horizon=horizon,
        history=history,
    )
    reporter.close()
    console.print(_summary_line(summary, output), highlight=False)
    if "pseudo" in summary:
        console.print(describe_rounds(summary), highlight=False, markup=False)
    report_after_training(run_folder(output, summary), report)


def predict(
    model: Annotated[
        list[Path], Opt("--model", help="Model folder or training output (repeatable).")
    ],
    input: Annotated[Path, Opt("--input", help="Table to predict.")],
    output: Annotated[Path, Opt("--output", help="Predictions file (CSV/TSV/Parquet).")],
    id_col: Annotated[str | None, Opt("--id-col", help="Id column copied to the output.")] = None,
    sample_submission: Annotated[
        Path | None, Opt("--sample-submission", help="Match its columns and id order.")
    ] = None,
    ensemble: Annotated[str, Opt(help="mean (probabilities) or rank (rank average).")] = "mean",
    weights: Annotated[
        str | None, Opt(help="Comma-separated weight per --model, e.g. 0.6,0.4.")
    ] = None,
    text: Annotated[
        str | None, Opt(help="Text column, for models trained without a table template.")
    ] = None,
    proba: Annotated[bool, Opt(help="Also write the probabilities.")] = False,
    each_fold: Annotated[
        bool,
        Opt("--each-fold", help="Weigh a CV run's folds one by one (default: one per --model)."),
    ] = False,
    threshold: Annotated[
        float | None,
        Opt(help="Decision threshold (binary, multilabel); default: the one fitted in training."),
    ] = None,
    overwrite: Annotated[bool, Opt(help="Replace an existing --output file.")] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
    long_text: Annotated[
        str | None,
        Opt("--long-text", help="Texts over the max length: head|head-tail|windows."),
    ] = None,
    tta: Annotated[
        bool, Opt(help="Average the --long-text variant with the plain prediction.")
    ] = False,
    dtype: Annotated[
        str | None, Opt(help="Compute in float32, bfloat16 or float16 (default: as saved).")
    ] = None,
) -> None:
    """Predict a table with trained model folder(s); several (or CV folds) form an ensemble.

    A folder written by `mlxbert stack` predicts through its meta-model."""
    use_device(device)
    started = time.perf_counter()
    if len(model) == 1 and is_stack(model[0]):
        if (
            weights
            or each_fold
            or ensemble != "mean"
            or long_text
            or threshold is not None
            or dtype is not None
        ):
            raise InputError(
                "a stack combines its runs itself: --weights, --each-fold, --ensemble, "
                "--threshold, --long-text and --dtype do not apply"
            )
        result = predict_stack_file(
            model[0],
            input,
            output,
            id_col=id_col,
            sample_submission=sample_submission,
            proba=proba,
            overwrite=overwrite,
            reporter=RichReporter(),
        )
        _done(result, output, started)
        return
    result = predict_file(
        model,
        input,
        output,
        id_col=id_col,
        sample_submission=sample_submission,
        ensemble=ensemble,
        weights=parse_floats(weights, "--weights"),
        text=text,
        proba=proba,
        reporter=RichReporter(),
        overwrite=overwrite,
        each_fold=each_fold,
        threshold=threshold,
        long_text=long_text,
        tta=tta,
        dtype=dtype,
    )
    _done(result, output, started)


def _done(result: dict, output: Path, started: float) -> None:
    console.print(
        f"[bold green]done:[/] {result['rows']} predictions from {len(result['models'])} "
        f"model(s) written to {output} ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


def print_json(data: dict) -> None:
    console.print_json(json.dumps(data, default=str))
