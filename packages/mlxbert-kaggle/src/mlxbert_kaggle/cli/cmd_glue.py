"""``mlxbert glue finetune`` and ``mlxbert glue eval`` (mlxbert-glue's command functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlxbert_glue import glue_eval, glue_finetune

from ..progress import RichReporter
from ..trackers import tracking_reporter
from ._common import GuardedTyper, console, positive, use_device
from .cmd_report import report_after_training

Opt = typer.Option

app = GuardedTyper(help="GLUE benchmark tasks: fine-tune and evaluate.", no_args_is_help=True)


def _echo(message: str) -> None:
    console.print(message, highlight=False, markup=False)


@app.command("finetune")
def finetune(
    task: Annotated[str, Opt(help="cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")],
    data_dir: Annotated[Path, Opt("--data-dir", help="GLUE root or the task's folder.")],
    model: Annotated[str, Opt(help="Preset name, folder or hub id.")],
    output: Annotated[Path, Opt(help="Output folder (empty, or a run to --resume).")],
    epochs: Annotated[int | None, Opt(help="Default: the task recipe's.")] = None,
    batch_size: Annotated[int | None, Opt("--batch-size")] = None,
    lr: Annotated[float | None, Opt()] = None,
    max_length: Annotated[int | None, Opt("--max-length")] = None,
    seed: Annotated[
        list[int] | None, Opt("--seed", help="Seed(s) (repeatable); default: the recipe's.")
    ] = None,
    init_from: Annotated[
        Path | None, Opt("--init-from", help="Start from a fine-tuned model (e.g. MNLI).")
    ] = None,
    checkpoint: Annotated[
        str | None, Opt(help="Checkpoint file, when --model's folder holds several (M2-BERT).")
    ] = None,
    lora: Annotated[str | None, Opt(help="LoRA preset.")] = None,
    quantize: Annotated[int | None, Opt(help="4 or 8.")] = None,
    max_train_samples: Annotated[
        int | None, Opt("--max-train-samples", help="Train on the first N examples.")
    ] = None,
    resume: Annotated[
        bool, Opt(help="Continue (or reuse) a run of the same settings in --output.")
    ] = True,
    overwrite: Annotated[bool, Opt(help="Replace what --output holds.")] = False,
    keep_all: Annotated[
        bool, Opt("--keep-all", help="Keep every seed's best model, not only the best seed's.")
    ] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
    log_to: Annotated[
        list[str] | None,
        Opt("--log-to", help="Also log scalars to tensorboard, wandb or mlflow (repeatable)."),
    ] = None,
    report: Annotated[
        bool, Opt("--report/--no-report", help="Write --output's report.html at the end.")
    ] = True,
) -> None:
    """Fine-tune on one GLUE task with its recipe; the best seed's model goes to --output."""
    for value, flag in (
        (epochs, "--epochs"),
        (batch_size, "--batch-size"),
        (max_train_samples, "--max-train-samples"),
    ):
        positive(value, flag)
    positive(max_length, "--max-length", minimum=2)
    use_device(device)
    settings = {"task": task, "model": model, "epochs": epochs, "lr": lr, "seeds": seed}
    reporter = tracking_reporter(RichReporter(), log_to, output, name=task, config=settings)
    glue_finetune(
        task,
        data_dir,
        model,
        output,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_length=max_length,
        seeds=seed or None,
        init_from=init_from,
        checkpoint=checkpoint,
        lora=lora,
        quantize=quantize,
        max_train_samples=max_train_samples,
        resume=resume,
        overwrite=overwrite,
        keep_all=keep_all,
        progress=reporter,
        echo=_echo,
    )
    reporter.close()
    report_after_training(output, report)


@app.command("eval")
def evaluate(
    task: Annotated[
        str, Opt(help="GLUE task, a comma-separated list, or all (one report, GLUE score).")
    ],
    data_dir: Annotated[Path, Opt("--data-dir", help="GLUE root or the task's folder.")],
    model: Annotated[
        list[str],
        Opt(
            help="Trained model folder; for several tasks a folder of task folders, or "
            "TASK=PATH (repeatable)."
        ),
    ],
    split: Annotated[str, Opt(help="dev or test (test writes GLUE submission files).")] = "dev",
    report: Annotated[Path | None, Opt(help="JSON report (+ .md).")] = None,
    batch_size: Annotated[int, Opt("--batch-size")] = 64,
    force: Annotated[
        bool, Opt(help="Score a model trained for another task on this one anyway.")
    ] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Evaluate a trained model on a GLUE split (metrics, JSON/Markdown report)."""
    positive(batch_size, "--batch-size")
    use_device(device)
    glue_eval(
        task,
        data_dir,
        model,
        split=split,
        report=report,
        batch_size=batch_size,
        force=force,
        echo=_echo,
    )
