"""A tiny plain-MLX model (no mlxbert-core) with BERT-like module names, for the unit tests."""

import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

# The helper module next to this file (lora_helpers) is importable by name.
sys.path.insert(0, str(Path(__file__).parent))


class Attention(nn.Module):
    def __init__(self, dims: int):
        super().__init__()
        self.query = nn.Linear(dims, dims)
        self.key = nn.Linear(dims, dims)
        self.value = nn.Linear(dims, dims)

    def __call__(self, x):
        return self.query(x) * mx.sigmoid(self.key(x)) + self.value(x)


class Block(nn.Module):
    def __init__(self, dims: int):
        super().__init__()
        self.attention = Attention(dims)
        self.norm = nn.LayerNorm(dims)
        self.dense = nn.Linear(dims, 2 * dims)
        self.out = nn.Linear(2 * dims, dims)

    def __call__(self, x):
        x = self.norm(x + self.attention(x))
        return x + self.out(nn.gelu(self.dense(x)))


class TinyClassifier(nn.Module):
    """Two blocks and a classifier; module paths like `encoder.layer.0.attention.query`."""

    def __init__(self, dims: int = 64, labels: int = 3, layers: int = 2):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layer = [Block(dims) for _ in range(layers)]
        self.classifier = nn.Linear(dims, labels)

    def __call__(self, x):
        for block in self.encoder.layer:
            x = block(x)
        return self.classifier(x.mean(axis=1))


def _make_model(seed: int = 0, **kwargs) -> TinyClassifier:
    mx.random.seed(seed)
    model = TinyClassifier(**kwargs)
    mx.eval(model.parameters())
    return model


def _weights(model: nn.Module) -> dict:
    return dict(tree_flatten(model.parameters()))


@pytest.fixture
def make_model():
    """Factory: `make_model(seed=0)` builds the same TinyClassifier for the same seed."""
    return _make_model


@pytest.fixture
def weights():
    """`weights(model)`: flat {dotted key: array} of every parameter."""
    return _weights


@pytest.fixture
def inputs():
    mx.random.seed(123)
    return mx.random.normal((4, 5, 64))
