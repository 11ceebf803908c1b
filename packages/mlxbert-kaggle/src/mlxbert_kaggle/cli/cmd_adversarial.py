"""``mlxbert adv-validate``: adversarial validation of a train / test pair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..adversarial import adversarial_validation
from ..progress import RichReporter
from ._common import console

Opt = typer.Option


def adv_validate(
    train: Annotated[Path, Opt("--train", help="Training table.")],
    test: Annotated[Path, Opt("--test", help="Test table (the rows to predict).")],
    output: Annotated[Path, Opt("--output", help="Folder for adversarial.json, train_rows.csv.")],
    text: Annotated[list[str] | None, Opt("--text", help="Free-text column(s).")] = None,
    feature: Annotated[
        list[str] | None, Opt("--feature", help="Tabular column(s) rendered as 'Name: value'.")
    ] = None,
    template: Annotated[str | None, Opt("--template", help="Format string over columns.")] = None,
    target: Annotated[
        list[str] | None, Opt("--target", help="The training table's target column(s), left out.")
    ] = None,
    exclude: Annotated[list[str] | None, Opt("--exclude", help="Column(s) left out.")] = None,
    id_col: Annotated[str | None, Opt("--id-col", help="Row id column.")] = None,
    folds: Annotated[int, Opt(help="CV folds of the train-vs-test classifier.")] = 5,
    top: Annotated[int, Opt(help="How many rows and words to show.")] = 10,
    overwrite: Annotated[bool, Opt(help="Replace an existing --output folder.")] = False,
) -> None:
    """Can a classifier tell train rows from test rows? CV AUC ~0.5: no shift."""
    result = adversarial_validation(
        train,
        test,
        output=output,
        text=text or (),
        features=feature,
        template=template,
        target=target or (),
        exclude=exclude or (),
        id_col=id_col,
        folds=folds,
        top=top,
        overwrite=overwrite,
        reporter=RichReporter(),
    )
    folds_line = ", ".join(f"{a:.3f}" for a in result["fold_auc"])
    console.print(
        f"[bold green]train vs test CV AUC {result['auc']:.4f}[/] (folds {folds_line}): "
        f"{result['verdict']}",
        highlight=False,
    )
    console.print(f"most test-like words: {', '.join(result['test_like_words'])}", markup=False)
    console.print("most test-like training rows (out-of-fold P(test)):", markup=False)
    for row in result["most_test_like_rows"]:
        shown = row["text"] if len(row["text"]) <= 100 else row["text"][:97] + "..."
        console.print(f"  {row['p_test']:.3f}  {row['id']}  {shown}", markup=False, highlight=False)
    console.print(f"all rows: {output / 'train_rows.csv'}", markup=False)


__all__ = ["adv_validate"]
