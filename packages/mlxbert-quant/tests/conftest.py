"""Tiny models shared by the tests: an embedding, two MLP blocks with norms, a classifier."""

import mlx.core as mx
import mlx.nn as nn
import pytest


class Block(nn.Module):
    def __init__(self, dims: int, hidden: int):
        super().__init__()
        self.dense_in = nn.Linear(dims, hidden)
        self.dense_out = nn.Linear(hidden, dims)
        self.norm = nn.LayerNorm(dims)

    def __call__(self, x):
        return self.norm(x + self.dense_out(nn.gelu(self.dense_in(x))))


class TinyModel(nn.Module):
    def __init__(self, vocab: int = 40, dims: int = 64, hidden: int = 128, labels: int = 3):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, dims)
        self.layers = [Block(dims, hidden), Block(dims, hidden)]
        self.classifier = nn.Linear(dims, labels)

    def __call__(self, ids):
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x)


@pytest.fixture
def make_model():
    def make(seed: int = 0, **kwargs) -> TinyModel:
        mx.random.seed(seed)
        model = TinyModel(**kwargs)
        mx.eval(model.parameters())
        return model

    return make


@pytest.fixture
def ids():
    return mx.array([[1, 5, 7, 9, 2, 0], [3, 3, 8, 39, 11, 4]])
