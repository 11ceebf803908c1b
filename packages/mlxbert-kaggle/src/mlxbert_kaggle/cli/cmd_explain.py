"""``mlxbert explain --model DIR "text"``: attention and token importances of one input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from ..explain import explain as run_explain
from ..explain import plot, summary_line, token_line
from ..report.figures import figure_class
from ._common import console

Opt = typer.Option


def _check_png(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() != ".png":
        raise InputError(f"--output {path}: the picture is a PNG; name it *.png")
    if path.is_dir():
        raise InputError(f"--output {path} is a folder; give a file name such as explain.png")
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass --overwrite to replace it")
    figure_class()  # matplotlib is needed for the picture: say so before loading the model


def explain(
    text: Annotated[str, typer.Argument(help="The text to explain.")],
    model: Annotated[Path, Opt("--model", help="A trained model folder.")],
    pair: Annotated[str | None, Opt("--pair", help="Second text of a sentence pair.")] = None,
    layer: Annotated[int, Opt(help="Layer whose attention is drawn (-1: the last).")] = -1,
    head: Annotated[
        int | None, Opt(help="Attention head drawn (default: the mean over heads).")
    ] = None,
    method: Annotated[
        str, Opt(help="Token importance: rollout (attention) or gradient (gradient x input).")
    ] = "rollout",
    output: Annotated[
        Path | None, Opt("--output", help="Write the picture (attention map, importances) here.")
    ] = None,
    overwrite: Annotated[bool, Opt(help="Replace an existing --output file.")] = False,
) -> None:
    """Show what a model looks at: attention of a layer/head and token importances."""
    if output is not None:
        _check_png(output, overwrite)
    result = run_explain(model, text, pair, layer=layer, head=head, method=method)
    console.print(summary_line(result), highlight=False, markup=False, soft_wrap=True)
    console.print(token_line(result))
    if result.attentions is None:
        console.print(
            f"note: the encoder ({result.architecture}) computes no attention probabilities; "
            "only gradient x input importances are shown",
            highlight=False,
            markup=False,
        )
    if output is not None:
        plot(result, output)
        console.print(f"picture: {output}", highlight=False, markup=False, soft_wrap=True)


__all__ = ["explain"]
