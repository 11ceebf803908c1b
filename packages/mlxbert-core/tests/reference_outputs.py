"""One built-in architecture's reference fixture (tests/fixtures/<name>): its configs, the
reference outputs in io.npz, and its weights loaded through the architecture's own code."""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path
from types import ModuleType

import mlx.core as mx
import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
#: The built-in architectures with a reference fixture, and the io.npz arrays their call takes.
INPUT_KEYS = {
    "bert": ("input_ids", "attention_mask", "token_type_ids"),
    "modernbert": ("input_ids", "attention_mask"),
    "neobert": ("input_ids", "attention_mask"),
}


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

    def row_alone(self, encoder, row: int) -> tuple[np.ndarray, int]:
        """The last hidden state of ``row``'s real tokens run alone, without padding (n, hidden),
        and their number n."""
        n = int(self.real[row].sum())
        alone = encoder(self.io["input_ids"][row : row + 1, :n]).last_hidden_state
        return np.array(alone)[0], n

    def mlm_error(self, model) -> float:
        """Largest absolute difference of a masked-LM model's logits at the masked positions."""
        logits = np.array(model(*self.inputs).logits)
        rows, cols = self.io["mlm_positions"].T
        return float(np.abs(logits[rows, cols] - self.io["mlm_logits"]).max())


@functools.cache
def reference(name: str) -> Reference:
    """The reference fixture of built-in architecture ``name`` (one instance per name)."""
    module = importlib.import_module(f"mlxbert_core.models.{name}")
    return Reference(module, name, INPUT_KEYS[name])
