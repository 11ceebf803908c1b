"""Implementations of ``mlxbert glue finetune`` and ``mlxbert glue eval``.

Plain functions taking the CLI's flags (the typer app in mlxbert-kaggle wires them in), so
the commands can also be called from Python and tested without a CLI framework. Both return
the result dict and print a short human summary through ``echo`` (``print`` by default).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .evaluate import evaluate
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
    lora: str | None = None,
    quantize: int | None = None,
    max_train_samples: int | None = None,
    resume: bool = True,
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
        lora=lora,
        quantize=quantize,
        max_train_samples=max_train_samples,
        resume=resume,
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


def glue_eval(
    task: str,
    data_dir: str | Path,
    model: str | Path,
    *,
    split: str = "dev",
    report: str | Path | None = None,
    batch_size: int = 64,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """``mlxbert glue eval --task T --data-dir DIR --model DIR [--split dev] [--report F]``."""
    t = get_task(task)
    result = evaluate(model, t.name, data_dir, split=split, report=report, batch_size=batch_size)
    if result["metrics"]:
        shown = ", ".join(f"{k} {100 * v:.2f}" for k, v in result["metrics"].items())
        echo(f"GLUE {t.name} {split}: {shown} ({result['num_examples']} examples)")
    for path in result.get("submission_files", []):
        echo(f"GLUE {t.name} {split}: predictions written to {path}")
    if report is not None:
        echo(f"report: {report} (+ {Path(report).with_suffix('.md').name})")
    return result
