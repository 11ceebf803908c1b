"""``mlxbert kaggle run PRESET`` and ``mlxbert kaggle submit``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..competition import run_preset
from ..competition import submit as do_submit
from ..presets import PRESETS, get_preset
from ..progress import RichReporter
from ..trackers import tracking_reporter
from ._common import GuardedTyper, console, use_device
from .cmd_report import report_after_training

Opt = typer.Option

app = GuardedTyper(
    help="Kaggle competitions end to end: " + ", ".join(PRESETS) + ".",
    no_args_is_help=True,
)


@app.command("run")
def run(
    preset: Annotated[str, typer.Argument(help="titanic | house-prices | nlp-disaster")],
    data_dir: Annotated[Path, Opt("--data-dir", help="Folder with the competition files.")],
    output: Annotated[Path | None, Opt(help="Output folder (default runs/PRESET).")] = None,
    folds: Annotated[int, Opt(help="Cross-validation folds.")] = 5,
    max_rows: Annotated[int | None, Opt("--max-rows", help="Train on a sample of N rows.")] = None,
    model: Annotated[str | None, Opt(help="Encoder (default all-minilm-l6-v2).")] = None,
    checkpoint: Annotated[
        str | None, Opt(help="Checkpoint file, when --model's folder holds several (M2-BERT).")
    ] = None,
    epochs: Annotated[int | None, Opt(help="Default: the preset's.")] = None,
    batch_size: Annotated[int | None, Opt("--batch-size")] = None,
    max_length: Annotated[int | None, Opt("--max-length")] = None,
    lr: Annotated[float | None, Opt()] = None,
    lora: Annotated[str | None, Opt(help="LoRA preset.")] = None,
    quantize: Annotated[int | None, Opt(help="4 or 8.")] = None,
    seed: Annotated[int | None, Opt()] = None,
    early_stopping: Annotated[int | None, Opt("--early-stopping")] = None,
    resume: Annotated[bool, Opt(help="Continue an interrupted run.")] = False,
    overwrite: Annotated[bool, Opt(help="Replace an existing run.")] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
    log_to: Annotated[
        list[str] | None,
        Opt("--log-to", help="Also log scalars to tensorboard, wandb or mlflow (repeatable)."),
    ] = None,
    report: Annotated[
        bool, Opt("--report/--no-report", help="Write OUTPUT/report.html at the end.")
    ] = True,
) -> None:
    """Cross-validate a preset and write OUTPUT/submission.csv (checked against the sample)."""
    use_device(device)
    p = get_preset(preset)
    output = output or Path("runs") / p.name
    settings = {"preset": p.name, "folds": folds, "max_rows": max_rows, "model": model}
    reporter = tracking_reporter(RichReporter(), log_to, output, name=p.name, config=settings)
    summary = run_preset(
        p.name,
        data_dir,
        output,
        folds=folds,
        max_rows=max_rows,
        resume=resume,
        overwrite=overwrite,
        reporter=reporter,
        model=model,
        checkpoint=checkpoint,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        lora=lora,
        quantize=quantize,
        seed=seed,
        early_stopping=early_stopping,
    )
    reporter.close()
    metric = summary["metric"]
    console.print(
        f"[bold green]done:[/] {p.name} CV {metric} {summary['score']:.4f} "
        f"(folds {summary['fold_mean'][metric]:.4f} ± {summary['fold_std'][metric]:.4f}); "
        f"{summary['submission']['rows']} rows in {summary['submission']['path']} "
        f"({summary['seconds']:.0f} s)",
        highlight=False,
    )
    report_after_training(output, report)


@app.command("submit")
def submit(
    competition: Annotated[str, typer.Argument(help="Preset name or Kaggle competition slug.")],
    file: Annotated[Path, Opt("--file", help="submission.csv to upload.")],
    message: Annotated[str, Opt(help="Submission description.")] = "mlxbert",
) -> None:
    """Upload a submission with the official kaggle client (when installed and configured)."""
    result = do_submit(competition, file, message)
    console.print(f"[bold green]submitted:[/] {result}", highlight=False)
