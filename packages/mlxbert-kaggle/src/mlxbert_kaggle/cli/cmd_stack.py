"""``mlxbert stack``: a level-2 model over CV runs' out-of-fold predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..progress import RichReporter
from ..stacking import stack as run_stack
from ._common import console

Opt = typer.Option


def stack(
    run: Annotated[list[Path], Opt("--run", help="A CV training output folder (repeatable).")],
    output: Annotated[Path, Opt("--output", help="Folder for stack.json and oof.csv.")],
    strength: Annotated[
        float, Opt(help="LogisticRegression's C (inverse regularisation) or Ridge's alpha.")
    ] = 1.0,
    overwrite: Annotated[bool, Opt(help="Replace an existing --output folder.")] = False,
) -> None:
    """Fit a logistic / ridge meta-model on the runs' out-of-fold predictions (nested CV).

    Predict with it as with any run: mlxbert predict --model OUTPUT --input test.csv ...
    """
    result = run_stack(
        run, output=output, strength=strength, overwrite=overwrite, reporter=RichReporter()
    )
    metric, scores = result["metric"], result["scores"]
    runs = ", ".join(f"{s[metric]:.4f}" for s in scores["runs"])
    console.print(
        f"[bold green]done:[/] CV {metric}: stack {scores['stack'][metric]:.4f}, mean of the "
        f"runs {scores['mean'][metric]:.4f}, each run {runs}; {output / 'stack.json'}",
        highlight=False,
    )


__all__ = ["stack"]
