"""``mlxbert distill``: a student fitted to a teacher ensemble's soft predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..distill import distill as run_distill
from ..progress import RichReporter
from ._common import console, use_device
from ._train_flags import split_train_flags, with_train_flags
from .cmd_report import report_after_training
from .cmd_train import _summary_line

Opt = typer.Option

#: train's flags that distill does not take (--student replaces --model).
NOT_FOR_DISTILL = ("model", "log_to", "pseudo_label", "pseudo_threshold", "pseudo_rounds")


def _distill_flags(
    teacher: Annotated[
        list[Path], Opt("--teacher", help="A teacher: a CV training output folder (repeatable).")
    ],
    student: Annotated[str, Opt(help="The student encoder: preset name, folder or hub id.")],
    temperature: Annotated[
        float | None,
        Opt(help="Softens the teachers' probabilities (default 2; regression: none)."),
    ] = None,
    alpha: Annotated[
        float, Opt(help="Share of the soft targets in the loss (the rest: the labels).")
    ] = 0.5,
) -> None:
    """(distill's own flags)"""


@with_train_flags(_distill_flags, drop=NOT_FOR_DISTILL)
def distill(**flags: Any) -> None:
    """Train a student on the teachers' soft predictions, by CV on the teachers' folds.

    Fold k of the student learns from the teachers' fold-k models (which never saw fold k's
    validation rows); the CV score uses the real labels only.
    """
    use_device(flags.pop("device"))
    output, resume, overwrite = flags.pop("output"), flags.pop("resume"), flags.pop("overwrite")
    teachers, temperature, alpha = (
        flags.pop("teacher"),
        flags.pop("temperature"),
        flags.pop("alpha"),
    )
    report = flags.pop("report")
    flags["model"] = flags.pop("student")
    table, config = split_train_flags(flags)
    summary = run_distill(
        teachers,
        output=output,
        config=config,
        temperature=temperature,
        alpha=alpha,
        resume=resume,
        overwrite=overwrite,
        reporter=RichReporter(),
        **table,
    )
    console.print(_summary_line(summary, output), highlight=False)
    report_after_training(output, report)


__all__ = ["distill"]
