"""Implementations of ``mlxbert glue finetune`` and ``mlxbert glue eval``.

Plain functions taking the CLI's flags (the typer app in mlxbert-kaggle wires them in), so
the commands can also be called from Python and tested without a CLI framework. Both return
the result dict and print a short human summary through ``echo`` (``print`` by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .evaluate import evaluate, evaluate_tasks
from .finetune import finetune
from .task_model import Reporter
from .tasks import get_task


def glue_finetune(
    task: str,
    data_dir: str | Path,
    model: str,
    output: str | Path,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    max_length: int | None = None,
    seeds: list[int] | None = None,
    init_from: str | Path | None = None,
    checkpoint: str | None = None,
    lora: str | None = None,
    quantize: int | None = None,
    max_train_samples: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
    keep_all: bool = False,
    progress: bool | Reporter = True,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """``mlxbert glue finetune --task T --data-dir DIR --model NAME_OR_PATH --output DIR``."""
    t = get_task(task)
    summary = finetune(
        t.name,
        model,
        data_dir,
        output,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        max_length=max_length,
        seeds=seeds,
        init_from=init_from,
        checkpoint=checkpoint,
        lora=lora,
        quantize=quantize,
        max_train_samples=max_train_samples,
        resume=resume,
        overwrite=overwrite,
        keep_all=keep_all,
        progress=progress,
    )
    shown = ", ".join(
        f"{k} {100 * v:.2f} ± {100 * summary['std'][k]:.2f}" for k, v in summary["mean"].items()
    )
    echo(
        f"GLUE {t.name}: {shown} over {len(summary['runs'])} seed(s); best seed "
        f"{summary['best_seed']} saved to {summary['model_dir']} ({summary['seconds']:.0f} s)"
    )
    return summary


def _model_map(models: Sequence[str | Path]) -> str | Path | dict[str, str]:
    """One folder, or ``TASK=PATH`` entries."""
    entries = [str(m) for m in models]
    if len(entries) == 1 and "=" not in entries[0]:
        return entries[0]
    bad = [e for e in entries if "=" not in e]
    if bad:
        raise ValueError(f"give one model folder, or TASK=PATH for each task (not {bad[0]!r})")
    return dict(e.split("=", 1) for e in entries)


def _echo_task(echo: Callable[[str], Any], name: str, split: str, result: dict) -> None:
    if result["metrics"]:
        shown = ", ".join(f"{k} {100 * v:.2f}" for k, v in result["metrics"].items())
        echo(f"GLUE {name} {split}: {shown} ({result['num_examples']} examples)")
    for path in result.get("submission_files", []):
        echo(f"GLUE {name} {split}: predictions written to {path}")


def glue_eval(
    task: str,
    data_dir: str | Path,
    model: str | Path | Sequence[str | Path],
    *,
    split: str = "dev",
    report: str | Path | None = None,
    batch_size: int = 64,
    force: bool = False,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """``mlxbert glue eval --task T --data-dir DIR --model DIR [--split dev] [--report F]``.

    ``task`` ``all`` or a comma-separated list evaluates several tasks into one report with
    the GLUE score; ``model`` is then a folder holding one model folder per task, or
    ``TASK=PATH`` entries."""
    models = [model] if isinstance(model, (str, Path)) else list(model)
    several = task.strip().lower() == "all" or "," in task or any("=" in str(m) for m in models)
    if several:
        result = evaluate_tasks(
            _model_map(models),
            data_dir,
            task,
            split,
            report=report,
            batch_size=batch_size,
            force=force,
        )
        for name, task_result in result["tasks"].items():
            _echo_task(echo, name, split, task_result)
        glue = result["glue"]
        if glue["score"] is not None:
            missing = "" if glue["complete"] else f"; missing {', '.join(glue['missing'])}"
            echo(f"GLUE score {100 * glue['score']:.2f} over {len(glue['tasks'])} task(s){missing}")
    else:
        if len(models) != 1:
            raise ValueError("one task takes one --model folder")
        t = get_task(task)
        result = evaluate(
            models[0],
            t.name,
            data_dir,
            split=split,
            report=report,
            batch_size=batch_size,
            force=force,
        )
        _echo_task(echo, t.name, split, result)
    if report is not None:
        echo(f"report: {report} (+ {Path(report).with_suffix('.md').name})")
    return result
