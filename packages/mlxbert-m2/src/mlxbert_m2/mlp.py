"""Gated-linear-unit MLP of M2-BERT, with dense or block-diagonal ("Monarch") weights."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .config import M2BertConfig


class BlockdiagLinear(nn.Module):
    """Block-diagonal linear layer (reference ``BlockdiagLinear``).

    ``weight`` has shape (nblocks, out/nblocks, in/nblocks): the input is split into nblocks
    contiguous chunks and output chunk b is ``weight[b] @ input_chunk[b]``.
    """

    def __init__(self, in_features: int, out_features: int, nblocks: int, bias: bool = True):
        super().__init__()
        if in_features % nblocks or out_features % nblocks:
            raise ValueError(
                f"BlockdiagLinear needs sizes divisible by nblocks={nblocks}, "
                f"got in={in_features}, out={out_features}"
            )
        self.nblocks = nblocks
        scale = 1.0 / math.sqrt(in_features // nblocks)
        self.weight = mx.random.uniform(
            -scale, scale, (nblocks, out_features // nblocks, in_features // nblocks)
        )
        if bias:
            self.bias = mx.zeros((out_features,))

    def __call__(self, x: mx.array) -> mx.array:
        nb, q, p = self.weight.shape
        lead = x.shape[:-1]
        # (nb, N, p) @ (nb, p, q) -> (nb, N, q): one batched matmul over the blocks.
        xb = x.reshape(-1, nb, p).transpose(1, 0, 2)
        y = (xb @ self.weight.swapaxes(1, 2)).transpose(1, 0, 2).reshape(*lead, nb * q)
        if "bias" in self:
            y = y + self.bias
        return y


class GatedLinearUnitMLP(nn.Module):
    """``LayerNorm(wo(gelu(g[:, :I]) * g[:, I:]) + a)`` with ``g = gated_layers(a)``."""

    def __init__(self, config: M2BertConfig):
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.intermediate_size = i
        if config.use_monarch_mlp:
            nb = config.monarch_mlp_nblocks
            self.gated_layers = BlockdiagLinear(h, 2 * i, nb, bias=False)
            self.wo = BlockdiagLinear(i, h, nb, bias=True)
        else:
            self.gated_layers = nn.Linear(h, 2 * i, bias=False)
            self.wo = nn.Linear(i, h)
        self.layernorm = nn.LayerNorm(h, eps=config.layer_norm_eps)

    def __call__(self, a: mx.array) -> mx.array:
        g = self.gated_layers(a)
        i = self.intermediate_size
        h = nn.gelu(g[..., :i]) * g[..., i:]
        return self.layernorm(self.wo(h) + a)
