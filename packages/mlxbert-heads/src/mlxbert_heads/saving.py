"""Saving and loading a head on its own: ``head_config.json`` + ``head.safetensors``."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from .heads._base import TaskHead
from .registry import head_from_config

CONFIG_NAME = "head_config.json"
WEIGHTS_NAME = "head.safetensors"


def save_head(head: TaskHead, directory: str | Path) -> Path:
    """Write the head's config (with fitted state) and weights into ``directory``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_NAME).write_text(json.dumps(head.get_config(), indent=2, sort_keys=True))
    mx.save_safetensors(str(path / WEIGHTS_NAME), dict(tree_flatten(head.parameters())))
    return path


def load_head(directory: str | Path) -> TaskHead:
    """Rebuild a head saved by :func:`save_head` (strict: every weight must match)."""
    path = Path(directory)
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {path}; was it written by save_head?")
    head = head_from_config(json.loads(config_file.read_text()))
    head.load_weights(str(path / WEIGHTS_NAME), strict=True)
    return head


__all__ = ["load_head", "save_head"]
