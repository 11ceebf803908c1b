"""``mlxbert glue finetune`` and ``mlxbert glue eval`` (mlxbert-glue's command functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlxbert_glue import glue_eval, glue_finetune
from mlxbert_glue.task_model import TqdmReporter

from ..errors import InputError
from ..trackers import tracking_reporter
from ._common import console, handle_errors, use_device
from .cmd_report import report_after_training

Opt = typer.Option

app = typer.Typer(help="GLUE benchmark tasks: fine-tune and evaluate.", no_args_is_help=True)


def _echo(message: str) -> None:
    console.print(message, highlight=False)


def _glue_errors(exc: Exception) -> InputError:
    return InputError(str(exc))


@app.command("finetune")
@handle_errors
def finetune(
    task: Annotated[str, Opt(help="cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")],
    data_dir: Annotated[Path, Opt("--data-dir", help="GLUE root or the task's folder.")],
    model: Annotated[str, Opt(help="Preset name, folder or hub id.")],
    output: Annotated[Path, Opt(help="Output folder.")],
    epochs: Annotated[int | None, Opt(help="Default: the task recipe's.")] = None,
    batch_size: Annotated[int | None, Opt("--batch-size")] = None,
    lr: Annotated[float | None, Opt()] = None,
    max_length: Annotated[int | None, Opt("--max-length")] = None,
    seed: Annotated[list[int] | None, Opt("--seed", help="Seed(s) (repeatable).")] = None,
    init_from: Annotated[
        Path | None, Opt("--init-from", help="Start from a fine-tuned model (e.g. MNLI).")
    ] = None,
    lora: Annotated[str | None, Opt(help="LoRA preset.")] = None,
    quantize: Annotated[int | None, Opt(help="4 or 8.")] = None,
    max_train_samples: Annotated[int | None, Opt("--max-train-samples")] = None,
    resume: Annotated[bool, Opt(help="Continue an interrupted run.")] = True,
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
    use_device(device)
    settings = {"task": task, "model": model, "epochs": epochs, "lr": lr, "seeds": seed}
    reporter = tracking_reporter(TqdmReporter(), log_to, output, name=task, config=settings)
    try:
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
            lora=lora,
            quantize=quantize,
            max_train_samples=max_train_samples,
            resume=resume,
            progress=reporter,
            echo=_echo,
        )
    except (KeyError, FileNotFoundError) as exc:
        raise _glue_errors(exc) from None
    reporter.close()
    report_after_training(output, report)


@app.command("eval")
@handle_errors
def evaluate(
    task: Annotated[str, Opt(help="GLUE task.")],
    data_dir: Annotated[Path, Opt("--data-dir", help="GLUE root or the task's folder.")],
    model: Annotated[Path, Opt(help="Trained model folder.")],
    split: Annotated[str, Opt(help="dev or test (test writes GLUE submission files).")] = "dev",
    report: Annotated[Path | None, Opt(help="JSON report (+ .md).")] = None,
    batch_size: Annotated[int, Opt("--batch-size")] = 64,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Evaluate a trained model on a GLUE split (metrics, JSON/Markdown report)."""
    use_device(device)
    try:
        glue_eval(
            task, data_dir, model, split=split, report=report, batch_size=batch_size, echo=_echo
        )
    except (KeyError, FileNotFoundError) as exc:
        raise _glue_errors(exc) from None
