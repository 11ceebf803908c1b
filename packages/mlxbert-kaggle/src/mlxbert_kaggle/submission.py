"""Making predictions match a competition's ``sample_submission.csv``: the same columns in
the same order, the same ids in the same order, nothing missing, nothing extra."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import InputError
from .tables import read_table


def check_unique_ids(ids: pd.Series, where: str) -> None:
    dupes = ids[ids.duplicated()].unique()
    if len(dupes):
        shown = ", ".join(map(str, dupes[:10]))
        raise InputError(
            f"{where}: id column {ids.name!r} has {len(dupes)} duplicated value(s): {shown}"
        )


def align_to_sample(predictions: pd.DataFrame, sample: pd.DataFrame, id_col: str | None = None):
    """``predictions`` reordered to ``sample``'s ids and columns.

    ``id_col`` defaults to the sample's first column. Every sample id must be predicted, and
    every non-id sample column must be a predicted column; extra predicted ids are an error
    (a submission for the wrong test file).
    """
    id_col = id_col or str(sample.columns[0])
    if id_col not in sample.columns:
        raise InputError(
            f"the sample submission has no id column {id_col!r}; columns: {list(sample.columns)}"
        )
    if id_col not in predictions.columns:
        raise InputError(
            f"the predictions have no id column {id_col!r} (pass --id-col matching the "
            f"sample submission's {sample.columns[0]!r})"
        )
    check_unique_ids(sample[id_col], "sample submission")
    check_unique_ids(predictions[id_col], "input")
    wanted = [c for c in sample.columns if c != id_col]
    missing_cols = [c for c in wanted if c not in predictions.columns]
    if missing_cols:
        raise InputError(
            f"the sample submission wants column(s) {missing_cols} but the model predicts "
            f"{[c for c in predictions.columns if c != id_col]}"
        )
    pred_ids = predictions[id_col].astype(str).str.strip()
    sample_ids = sample[id_col].astype(str).str.strip()
    absent = sorted(set(sample_ids) - set(pred_ids))
    extra = sorted(set(pred_ids) - set(sample_ids))
    if absent or extra:
        parts = []
        if absent:
            parts.append(f"{len(absent)} sample id(s) not in the input (e.g. {absent[:5]})")
        if extra:
            parts.append(f"{len(extra)} input id(s) not in the sample (e.g. {extra[:5]})")
        raise InputError("ids do not match the sample submission: " + "; ".join(parts))
    by_id = predictions.assign(**{id_col: pred_ids}).set_index(id_col)
    aligned = by_id.loc[sample_ids.tolist(), wanted].reset_index()
    aligned[id_col] = sample[id_col].to_numpy()  # the sample's exact id text
    return aligned[[id_col, *wanted]]


def validate_submission(path: str | Path, sample_path: str | Path) -> dict[str, int]:
    """Re-read a written submission and check it against the sample: same header, same ids
    in the same order, no empty cell. Returns ``{"rows": n}``."""
    sub = read_table(path, keep_text=[], what="submission")
    sample = read_table(sample_path, what="sample submission")
    if list(sub.columns) != list(sample.columns):
        raise InputError(f"{path}: columns {list(sub.columns)} != sample {list(sample.columns)}")
    if len(sub) != len(sample):
        raise InputError(f"{path}: {len(sub)} rows, the sample has {len(sample)}")
    first = sample.columns[0]
    if sub[first].astype(str).tolist() != sample[first].astype(str).tolist():
        raise InputError(f"{path}: the {first!r} column differs from the sample's")
    if sub.isna().any().any():
        raise InputError(f"{path} has empty cells")
    return {"rows": len(sub)}


__all__ = ["align_to_sample", "check_unique_ids", "validate_submission"]
