"""Reading weight files: safetensors, sharded indexes, and PyTorch files without PyTorch.

``pytorch_model.bin`` and Composer ``.pt`` files are read by a restricted unpickler (see
:mod:`mlxbert_core._private.torch_pickle`). Their flat state dict is then cached as
safetensors under ``<cache>/converted/<sha256 of the source>.safetensors`` so later loads of
the same file skip the unpickling (``<cache>`` is ``$MLXBERT_CACHE`` or ``~/.cache/mlxbert``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxbert_core._private import torch_pickle
from mlxbert_core._private.cache import cache_root
from mlxbert_core._private.torch_pickle import UnsafePickleError

__all__ = [
    "WEIGHT_FILES",
    "CheckpointError",
    "UnsafePickleError",
    "converted_cache_dir",
    "find_weight_file",
    "load_torch_checkpoint",
    "load_weights",
    "state_dict_from_checkpoint",
]

logger = logging.getLogger(__name__)

#: Weight files looked for in a model folder, in order of preference.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


class CheckpointError(ValueError):
    """A weight file is missing, unreadable or not a state dict."""


def converted_cache_dir() -> Path:
    """Where converted ``.bin``/``.pt`` checkpoints are cached as safetensors."""
    return cache_root() / "converted"


def load_torch_checkpoint(path: str | Path) -> Any:
    """Load a ``torch.save`` file without PyTorch.

    Returns the saved structure (dicts, OrderedDicts, lists, numbers, strings) with every
    tensor as an ``mx.array`` (bfloat16 stays bfloat16). Pickles that reference anything but
    tensors and plain containers are refused with :class:`UnsafePickleError`, unexecuted.
    A Composer checkpoint's model weights are ``ckpt["state"]["model"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch_pickle.load(path)
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"could not read PyTorch checkpoint {path}: {exc}") from exc


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, mx.array) for k, v in obj.items())
    )


def state_dict_from_checkpoint(obj: Any, source: str = "checkpoint") -> dict[str, mx.array]:
    """The flat ``name -> array`` dict inside a loaded checkpoint.

    Accepts a plain state dict, a Composer checkpoint (``["state"]["model"]``) and the common
    ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers.
    """
    candidates = [obj]
    if isinstance(obj, Mapping):
        state = obj.get("state")
        if isinstance(state, Mapping):
            candidates.append(state.get("model"))
        candidates.extend(obj.get(key) for key in ("state_dict", "model", "model_state_dict"))
    for candidate in candidates:
        if _is_state_dict(candidate):
            return dict(candidate)
    keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"{source} holds no state dict (tensors by name); top level: {keys}. Expected a flat "
        "state dict, a Composer checkpoint (['state']['model']) or {'state_dict': ...}."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_safetensors(path: Path) -> dict[str, mx.array]:
    try:
        weights = mx.load(str(path))
    except Exception as exc:  # MLX raises RuntimeError/ValueError depending on the damage
        raise CheckpointError(
            f"could not read {path}: {exc}. The file looks truncated or corrupt; delete it and "
            "download or save it again."
        ) from exc
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path} is not a safetensors file")
    return weights


def _load_torch_file(path: Path, *, cache: bool) -> dict[str, mx.array]:
    cached: Path | None = None
    if cache:
        cached = converted_cache_dir() / f"{_sha256(path)}.safetensors"
        if cached.is_file():
            try:
                return mx.load(str(cached))
            except Exception:  # a damaged cache entry is rebuilt, never trusted
                logger.warning("ignoring damaged conversion cache entry %s", cached)
    weights = state_dict_from_checkpoint(load_torch_checkpoint(path), str(path))
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".safetensors")
            os.close(fd)
            mx.save_safetensors(tmp, weights, metadata={"source": path.name})
            os.replace(tmp, cached)  # atomic, so a concurrent reader never sees half a file
            logger.info("cached converted %s as %s", path, cached)
        except OSError as exc:
            logger.warning("could not cache the converted %s: %s", path, exc)
    return weights


def _load_sharded(index_path: Path, *, cache: bool) -> dict[str, mx.array]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{index_path} is not a valid shard index: {exc}") from exc
    weights: dict[str, mx.array] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"shard {shard} listed in {index_path.name} is missing")
        weights.update(_load_file(shard_path, cache=cache))
    missing = sorted(set(weight_map) - set(weights))
    if missing:
        raise CheckpointError(f"{index_path.name} lists tensors no shard holds: {missing[:10]}")
    return weights


def _load_file(path: Path, *, cache: bool) -> dict[str, mx.array]:
    name = path.name
    if name.endswith(".index.json"):
        return _load_sharded(path, cache=cache)
    if name.endswith(".safetensors"):
        return _load_safetensors(path)
    if name.endswith(_TORCH_SUFFIXES):
        return _load_torch_file(path, cache=cache)
    raise CheckpointError(
        f"unknown weight file type: {path} (expected .safetensors, .bin, .pt or a shard index)"
    )


def find_weight_file(folder: str | Path) -> Path:
    """The weight file of a model folder (see :data:`WEIGHT_FILES` for the order)."""
    folder = Path(folder)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no weights in {folder}: looked for {', '.join(WEIGHT_FILES)}")


def load_weights(path_or_folder: str | Path, *, cache: bool = True) -> dict[str, mx.array]:
    """Load a flat ``name -> mx.array`` dict from a weight file or a model folder.

    Handles ``model.safetensors``, sharded ``model.safetensors.index.json``,
    ``pytorch_model.bin`` (and sharded ``pytorch_model.bin.index.json``) and Composer ``.pt``
    files, without PyTorch. Converted PyTorch files are cached as safetensors (``cache=False``
    turns that off).
    """
    path = Path(path_or_folder)
    if path.is_dir():
        path = find_weight_file(path)
    elif not path.exists():
        raise FileNotFoundError(f"weight file or folder not found: {path}")
    return _load_file(path, cache=cache)
