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
    loader = None
    if (path / "finetune.json").is_file():
        loader = load_glue_run
    elif (path / "metrics.json").is_file():
        loader = load_table_run
    if loader is not None:
        try:
            return loader(path)
        except InputError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as exc:  # damaged or partial files
            what = f"{type(exc).__name__}: {exc}"
            raise InputError(f"{path}: the run's files cannot be read ({what})") from None
    raise InputError(
        f"{path} holds no finished run: expected finetune.json (mlxbert glue finetune) or "
        "metrics.json (mlxbert train / mlxbert kaggle run)"
    )


__all__ = ["load_run"]
