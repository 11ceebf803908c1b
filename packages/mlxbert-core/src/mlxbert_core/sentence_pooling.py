"""The pooling a sentence-transformers checkpoint was trained with.

A sentence-transformers folder (all-MiniLM-L6-v2 and its kin) lists its modules in
``modules.json``; its ``Pooling`` module's ``config.json`` says which token states make the
sentence vector (``pooling_mode_mean_tokens`` ...). That is the checkpoint's own pooling, and
the one a classifier on it should start from: its [CLS] state and BERT pooler were never
trained to summarise a sentence.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["checkpoint_pooling"]

#: sentence-transformers' pooling flags -> mlxbert's pooling names.
_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def _read(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def checkpoint_pooling(folder: str | Path) -> str | None:
    """``"mean"``, ``"cls"`` or ``"max"`` when ``folder`` is a sentence-transformers checkpoint
    pooling that way (one mode on), else None."""
    root = Path(folder)
    modules = _read(root / "modules.json")
    if not isinstance(modules, list):
        return None
    for module in modules:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling"):
            config = _read(root / str(module.get("path", "")) / "config.json")
            if not isinstance(config, dict):
                return None
            chosen = [name for key, name in _MODES.items() if config.get(key)]
            return chosen[0] if len(chosen) == 1 else None
    return None
