"""Loading named weights into a model strictly: every problem listed at once, or nothing loaded.

``from_pretrained`` and architecture plugins with their own checkpoint formats (mlxbert-m2)
load through :func:`load_weights_strict`, so that a checkpoint that does not fit its config
fails the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Collection

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

__all__ = ["WeightMismatchError", "check_weights", "load_weights_strict"]


class WeightMismatchError(ValueError):
    """The checkpoint's weights do not match the model (every mismatch is listed, and kept as
    ``missing``, ``unexpected`` and ``misshaped`` parameter names for callers to inspect)."""

    def __init__(
        self,
        message: str,
        *,
        missing: Collection[str] = (),
        unexpected: Collection[str] = (),
        misshaped: Collection[str] = (),
    ):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.misshaped = list(misshaped)


def check_weights(
    model: nn.Module,
    weights: dict[str, mx.array],
    *,
    allow_missing: Collection[str] = (),
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) parameter names of ``weights`` against ``model``;
    names in ``allow_missing`` may be absent (the model keeps its values)."""
    expected = dict(tree_flatten(model.parameters()))
    missing = sorted(k for k in expected if k not in weights and k not in allow_missing)
    unexpected = sorted(k for k in weights if k not in expected)
    misshaped = sorted(
        k for k in weights if k in expected and tuple(weights[k].shape) != expected[k].shape
    )
    return missing, unexpected, misshaped


def load_weights_strict(
    model: nn.Module,
    weights: dict[str, mx.array],
    *,
    source: str | object = "checkpoint",
    allow_missing: Collection[str] = (),
    dtype: mx.Dtype | None = None,
    hint: str | None = None,
) -> None:
    """Load ``weights`` (parameter name -> array) into ``model``, strictly.

    Every missing, unexpected or mis-shaped weight is listed in one
    :class:`WeightMismatchError` (with ``hint`` as its last line), and the model is left
    unchanged. Names in ``allow_missing`` keep the model's values. With ``dtype``, the
    model's floating parameters end up in that dtype (integer buffers keep theirs).
    """
    missing, unexpected, misshaped = check_weights(model, weights, allow_missing=allow_missing)
    if missing or unexpected or misshaped:
        shapes = dict(tree_flatten(model.parameters()))
        lines = [
            f"weights in {source} do not match the {type(model).__name__} built from its config:"
        ]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected))
        for key in misshaped:
            lines.append(
                f"  shape mismatch: {key}: checkpoint {tuple(weights[key].shape)}, "
                f"model {tuple(shapes[key].shape)}"
            )
        if hint:
            lines.append(hint)
        raise WeightMismatchError(
            "\n".join(lines), missing=missing, unexpected=unexpected, misshaped=misshaped
        )
    model.update(tree_unflatten(list(weights.items())))
    if dtype is not None:
        model.set_dtype(dtype)
