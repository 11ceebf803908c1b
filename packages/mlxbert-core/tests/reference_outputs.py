"""One built-in architecture's reference fixture (tests/fixtures/<name>): its configs, the
reference outputs in io.npz, and its weights loaded through the architecture's own code."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import mlx.core as mx
import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"


class Reference:
    def __init__(self, module: ModuleType, name: str, input_keys: tuple[str, ...]):
        self.module = module
        self.folder = FIXTURES / name
        self.io = np.load(self.folder / "io.npz")
        self.real = self.io["attention_mask"] == 1
        self.inputs = tuple(self.io[key] for key in input_keys)

    def config(self, sub: str = "") -> dict:
        return json.loads((self.folder / sub / "config.json").read_text())

    def load(self, task: str, sub: str = "", weights: dict | None = None):
        """(model for ``task``, sanitize notes) with the folder's (or the given) weights."""
        model = self.module.build(self.config(sub), task)
        if weights is None:
            weights = mx.load(str(self.folder / sub / "model.safetensors"))
        weights, notes = self.module.sanitize(weights, model)
        model.load_weights(list(weights.items()), strict=True)
        return model, notes

    def max_err_real(self, actual: mx.array, expected: np.ndarray) -> float:
        """Largest absolute difference over real (unpadded) tokens."""
        return float(np.abs(np.array(actual.astype(mx.float32)) - expected)[self.real].max())
