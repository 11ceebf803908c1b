"""A run folder -> :class:`RunSummary`, whichever command wrote it: GLUE fine-tuning
(``finetune.json``) or table training (``metrics.json`` of ``mlxbert train`` /
``mlxbert kaggle run``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .glue_run import load_glue_run
from .summary import RunSummary
from .table_run import load_table_run


def load_run(run_dir: str | Path) -> RunSummary:
    """Read a run folder into a :class:`RunSummary` (:class:`InputError` when it is none)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"run folder {path} does not exist")
    if (path / "finetune.json").is_file():
        return load_glue_run(path)
    if (path / "metrics.json").is_file():
        return load_table_run(path)
    raise InputError(
        f"{path} holds no finished run: expected finetune.json (mlxbert glue finetune) or "
        "metrics.json (mlxbert train / mlxbert kaggle run)"
    )


__all__ = ["load_run"]
