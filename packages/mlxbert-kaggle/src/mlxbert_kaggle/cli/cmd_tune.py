"""``mlxbert tune``: hyper-parameter search over ``train``'s settings (Optuna)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..progress import RichReporter
from ..tune import SEARCHABLE
from ..tune import tune as run_tune
from ._common import console, use_device
from ._train_flags import split_train_flags, with_train_flags

Opt = typer.Option

#: train's flags that a search does not take.
NOT_FOR_TUNE = ("log_to", "report", "pseudo_label", "pseudo_threshold", "pseudo_rounds")


def _tune_flags(
    trials: Annotated[
        int, Opt(help="Trials in the whole study (a resumed one counts its own).")
    ] = 20,
    timeout: Annotated[float | None, Opt(help="Seconds after which no new trial starts.")] = None,
    search: Annotated[
        list[str] | None,
        Opt("--search", help=f"What to vary (repeatable; default all): {', '.join(SEARCHABLE)}."),
    ] = None,
    prune: Annotated[bool, Opt(help="Stop trials that trail the median after a fold.")] = True,
) -> None:
    """(tune's own flags)"""


@with_train_flags(_tune_flags, drop=NOT_FOR_TUNE)
def tune(**flags: Any) -> None:
    """Search learning rate, epochs, batch size, max length, LoRA and head options by CV.

    --epochs, --max-length and --batch-size are the upper ends of their ranges. Trials go to
    OUTPUT/trials/, the study to OUTPUT/study.db (--resume continues it), the result and a
    ready `mlxbert train` command to OUTPUT/best.json.
    """
    use_device(flags.pop("device"))
    output, resume, overwrite = flags.pop("output"), flags.pop("resume"), flags.pop("overwrite")
    trials, timeout = flags.pop("trials"), flags.pop("timeout")
    search, prune = flags.pop("search"), flags.pop("prune")
    table, base = split_train_flags(flags)
    result = run_tune(
        table,
        output=output,
        base=base,
        trials=trials,
        timeout=timeout,
        search=search,
        prune=prune,
        resume=resume,
        overwrite=overwrite,
        reporter=RichReporter(),
    )
    console.print(_trials_table(result))
    if result["best"] is None:
        console.print("[bold yellow]no trial finished[/]; nothing to recommend", highlight=False)
        return
    best = result["best"]
    console.print(
        f"[bold green]best:[/] trial {best['trial']}, CV {result['metric']} {best['score']:.4f} "
        f"({best['folder']}); settings and command in {output / 'best.json'}",
        highlight=False,
    )
    console.print(result["command"], highlight=False, markup=False, soft_wrap=True)


def _trials_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"trials ({result['metric']}, {result['direction']})")
    for column in ("trial", "state", "score", "after folds", "settings", "s"):
        table.add_column(column)
    for t in result["trials"]:
        folds = " ".join(f"{v:.3f}" for v in t["fold_scores"].values())
        settings = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items()
        )
        table.add_row(
            str(t["trial"]),
            t["state"] + (" (interrupted)" if t["interrupted"] else ""),
            "" if t["value"] is None else f"{t['value']:.4f}",
            folds,
            settings,
            "" if t["seconds"] is None else f"{t['seconds']:.0f}",
        )
    return table


__all__ = ["tune"]
