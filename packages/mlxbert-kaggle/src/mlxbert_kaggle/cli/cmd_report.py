"""``mlxbert report RUN_DIR`` and the report written at the end of a training command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..report import INSTALL_HINT, PlottingUnavailable, report_paths, write_report
from ._common import console

Opt = typer.Option


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A training output folder (train, kaggle run, glue finetune).")
    ],
    output: Annotated[
        Path | None, Opt("--output", help="The HTML file (default RUN_DIR/report.html).")
    ] = None,
    overwrite: Annotated[
        bool, Opt(help="Replace an existing file that is not an mlxbert report.")
    ] = False,
) -> None:
    """Write an HTML report with figures of a finished run: curves, scores, errors, calibration."""
    files = write_report(run_dir, output, overwrite=overwrite)
    folder = report_paths(run_dir, output)[1]
    console.print(
        f"[bold green]report:[/] {escape(str(files.html))} ({len(files.figures)} figures, also "
        f"as PNG in {escape(str(folder))})",
        highlight=False,
    )


def report_after_training(run_dir: Path, enabled: bool) -> None:
    """The report at the end of ``train`` / ``kaggle run`` / ``glue finetune`` (unless
    ``--no-report``): a missing matplotlib or any failure is one line of news, never an
    error of the finished run."""
    if not enabled:
        return
    try:
        files = write_report(run_dir)
    except PlottingUnavailable:
        note = f"note: no report written (needs matplotlib: {INSTALL_HINT})"
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    except Exception as exc:  # the training run is finished: a report problem must not fail it
        console.print(
            f"note: no report written: {exc}", highlight=False, markup=False, soft_wrap=True
        )
    else:
        console.print(f"report: {files.html}", highlight=False, markup=False, soft_wrap=True)


__all__ = ["report", "report_after_training"]
