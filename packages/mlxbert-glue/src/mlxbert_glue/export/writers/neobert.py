"""NeoBERT (mlxbert-core's ``NeoBERT``): pre-RMSNorm layers, per-head packed qkv, rotary
positions on adjacent pairs, SwiGLU, final RMSNorm."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops import EncoderGraph, GraphInputs, Ops
from . import GraphWriter
from ._weights import dense, norm, table


def _rms(ops: Ops, x: Any, module: Any, name: str) -> Any:
    return ops.rms_norm(x, norm(module)[0], module.eps, name)


def write(encoder: Any, ops: Ops, inputs: GraphInputs, hidden_states: bool) -> EncoderGraph:
    ids = inputs.input_ids
    x = ops.embed(table(encoder.encoder), ids, "encoder")
    positions = ops.positions(ids)
    tokens = ops.token_mask(inputs.attention_mask)
    mask = ops.key_padding_mask(tokens)
    states = []
    for i, block in enumerate(encoder.transformer_encoder):
        p = f"transformer_encoder.{i}"
        heads, d = block.num_heads, block.head_dim
        h = _rms(ops, x, block.attention_norm, f"{p}.attention_norm")
        # Per-head layout: head h's 3*D output rows are [q | k | v].
        weight, _ = dense(block.qkv)
        packed = weight.reshape(heads, 3, d, -1)
        q, k, v = (
            ops.split_heads(ops.linear(h, packed[:, j].reshape(heads * d, -1), None,
                                       f"{p}.qkv.{n}"), heads)
            for j, n in enumerate("qkv")
        )  # fmt: skip
        q = ops.rope(q, positions, block.rope_theta, d, traditional=True)
        k = ops.rope(k, positions, block.rope_theta, d, traditional=True)
        context = ops.merge_heads(ops.attention(q, k, v, mask, block.scale))
        x = ops.add(x, ops.linear(context, *dense(block.wo), f"{p}.wo"))
        h = _rms(ops, x, block.ffn_norm, f"{p}.ffn_norm")
        w12, _ = dense(block.ffn.w12)
        gate_w, value_w = np.split(w12, 2, axis=0)
        gate = ops.act(ops.linear(h, gate_w, None, f"{p}.ffn.w12_gate"), "silu")
        value = ops.linear(h, value_w, None, f"{p}.ffn.w12_value")
        x = ops.add(x, ops.linear(ops.mul(gate, value), *dense(block.ffn.w3), f"{p}.ffn.w3"))
        if hidden_states:
            states.append(x)  # before the final norm, as the encoder returns them
    x = _rms(ops, x, encoder.layer_norm, "layer_norm")
    return EncoderGraph(last_hidden_state=x, tokens=tokens, hidden_states=states)


WRITER = GraphWriter(
    write=write,
    inputs=lambda encoder: ("input_ids", "attention_mask"),
    max_positions=lambda encoder: int(encoder.config.max_length),
)

__all__ = ["WRITER", "write"]
