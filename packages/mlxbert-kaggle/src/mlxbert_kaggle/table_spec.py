"""The target of a training table before any training: the task and the default metric
(what ``tune``, pseudo-labelling and distillation check before long work starts)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .tables import read_table
from .targets import TargetSpec


def target_spec(table: dict[str, Any]) -> TargetSpec:
    """The :class:`TargetSpec` ``train_table`` will infer from its data keywords ``table``
    (``train``, ``target``, ``task``, ``label_sep``, ``target_transform``, ...)."""
    frame = table["train"]
    if not isinstance(frame, pd.DataFrame):
        keep = [c for c in (table.get("id_col"), table.get("group_col")) if c]
        frame = read_table(frame, keep_text=keep, what="training")
    target = table["target"]
    return TargetSpec.infer(
        frame,
        [target] if isinstance(target, str) else list(target),
        task=table.get("task") or "auto",
        label_sep=table.get("label_sep"),
        transform=table.get("target_transform"),
    )


__all__ = ["target_spec"]
