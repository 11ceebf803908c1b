"""Saving and restoring a :class:`~mlxbert_core.training.Trainer` for exact resumption.

A state folder holds:

* ``model.safetensors`` — the trainable parameters (float32 master weights), HF-style dotted
  names;
* ``optimizer.safetensors`` — the optimizer state tree (AdamW moments, step counters, learning
  rate), flattened with dotted paths;
* ``rng.safetensors`` — MLX's random key (dropout), the float16 loss scale if any, and the
  gradients accumulated in an unfinished accumulation window if any;
* ``trainer_state.json`` — counters, the training config and the caller's ``extra``.

Loading is strict: every missing, unexpected or mis-shaped array is listed in one error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

if TYPE_CHECKING:
    from .trainer import Trainer

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer_state.json"


def _flat(tree: Any) -> dict[str, mx.array]:
    return {k: v for k, v in tree_flatten(tree) if isinstance(v, mx.array)}


def save_trainer_state(trainer: Trainer, directory: Path, extra: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(directory / MODEL_FILE), _flat(trainer.model.trainable_parameters()))
    mx.save_safetensors(str(directory / OPTIMIZER_FILE), _flat(trainer.optimizer.state))
    misc = {"rng.key": mx.random.state[0]}
    if trainer.loss_scale is not None:
        misc.update({f"loss_scale.{k}": v for k, v in trainer.loss_scale.state.items()})
    if trainer._accum is not None:
        misc.update({f"accum.{k}": v for k, v in _flat(trainer._accum).items()})
    mx.save_safetensors(str(directory / RNG_FILE), misc)
    state = {
        "format_version": FORMAT_VERSION,
        "micro_step": trainer.micro_step,
        "optimizer_step": trainer.optimizer_step,
        "accum_count": trainer._accum_count,
        "total_steps": trainer.total_steps,
        "world_size": trainer.world_size,
        "config": trainer.config.to_dict(),
        "extra": extra,
    }
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _check_same(kind: str, expected: dict[str, mx.array], found: dict[str, mx.array]) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k}: expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if expected[k].shape != found[k].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"The saved {kind} does not match this trainer:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            lines.append(f"  wrong shape ({len(shapes)}): {'; '.join(shapes)}")
        lines.append(
            "  Build the same model (same trainable/frozen parts) and config as the saved run."
        )
        raise ValueError("\n".join(lines))


def restore_random_key(key: mx.array) -> None:
    """Make ``key`` MLX's global random key again.

    ``mx.random.state`` cannot be assigned to, but ``mx.random.seed(s)`` sets the threefry key
    to the two 32-bit halves of ``s``, so seeding with the saved halves recreates the key."""
    hi, lo = (int(v) for v in key.tolist())
    mx.random.seed((hi << 32) | lo)
    if mx.random.state[0].tolist() != [hi, lo]:
        raise RuntimeError("Could not restore MLX's random key; this MLX seeds keys differently")


def load_trainer_state(trainer: Trainer, directory: Path) -> dict[str, Any]:
    from .trainer import assign_tree

    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(
            f"No trainer state in {directory} ({STATE_FILE} missing): pass a folder written by "
            "Trainer.save_state"
        )
    state = json.loads(state_path.read_text())
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"Unsupported trainer state version {state.get('format_version')}")

    weights = mx.load(str(directory / MODEL_FILE))
    current = _flat(trainer.model.trainable_parameters())
    _check_same("model weights", current, weights)
    trainer.model.update(
        tree_unflatten([(k, v.astype(current[k].dtype)) for k, v in weights.items()])
    )

    opt = mx.load(str(directory / OPTIMIZER_FILE))
    current_opt = _flat(trainer.optimizer.state)
    _check_same("optimizer state", current_opt, opt)
    # In place, so the compiled step keeps referring to the live containers.
    assign_tree(trainer.optimizer.state, tree_unflatten(list(opt.items())))

    misc = mx.load(str(directory / RNG_FILE))
    restore_random_key(misc["rng.key"])
    if trainer.loss_scale is not None:
        for key in trainer.loss_scale.state:
            if f"loss_scale.{key}" in misc:
                trainer.loss_scale.state[key] = misc[f"loss_scale.{key}"]
    accum = [(k[len("accum.") :], v) for k, v in misc.items() if k.startswith("accum.")]
    trainer._accum = tree_unflatten(accum) if accum else None
    trainer._accum_count = int(state["accum_count"]) if accum else 0
    trainer.micro_step = int(state["micro_step"])
    trainer.optimizer_step = int(state["optimizer_step"])
    mx.eval(trainer.model.parameters(), trainer.optimizer.state)
    return state.get("extra", {})
