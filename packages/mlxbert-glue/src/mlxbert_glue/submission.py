"""Test-set prediction files in the GLUE benchmark's submission layout.

The GLUE server expects one ``index<TAB>prediction`` file per task, named ``CoLA.tsv``,
``SST-2.tsv``, ``MRPC.tsv``, ``STS-B.tsv``, ``QQP.tsv``, ``MNLI-m.tsv``, ``MNLI-mm.tsv``,
``QNLI.tsv``, ``RTE.tsv``, ``WNLI.tsv`` (and ``AX.tsv`` from the MNLI model), with the label
strings of the task's files (``entailment``/``not_entailment``, MNLI's three classes) and
0/1 for the binary tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .tasks import GlueTask, get_task


def submission_filename(task: str | GlueTask, split: str = "test") -> str:
    t = get_task(task)
    try:
        return t.submission_files[split]
    except KeyError:
        raise ValueError(
            f"GLUE has no submission file for {t.name} split {split!r}; "
            f"submission splits: {', '.join(t.submission_files)}"
        ) from None


def format_predictions(task: str | GlueTask, predictions: np.ndarray) -> list[str]:
    """Prediction strings as GLUE wants them: label strings, or STS-B scores in [0, 5]."""
    t = get_task(task)
    predictions = np.asarray(predictions)
    if t.is_regression:
        lo, hi = t.value_range or (-np.inf, np.inf)
        return [f"{v:.3f}" for v in np.clip(predictions.astype(np.float64), lo, hi)]
    assert t.labels is not None
    ids = predictions.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= len(t.labels)):
        raise ValueError(f"{t.name}: class ids must lie in 0..{len(t.labels) - 1}")
    return [t.labels[i] for i in ids]


def write_submission(
    task: str | GlueTask,
    ids: Sequence[str],
    predictions: np.ndarray,
    output_dir: str | Path,
    split: str = "test",
) -> Path:
    """Write ``index\\tprediction`` rows to ``output_dir/<GLUE name>.tsv``; returns the path."""
    t = get_task(task)
    values = format_predictions(t, predictions)
    if len(values) != len(ids):
        raise ValueError(f"{t.name}: {len(values)} predictions for {len(ids)} ids")
    out = Path(output_dir) / submission_filename(t, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("index\tprediction\n")
        for i, v in zip(ids, values):
            fh.write(f"{i}\t{v}\n")
    return out
