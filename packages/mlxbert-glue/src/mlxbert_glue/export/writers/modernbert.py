"""ModernBERT (mlxbert-core's ``ModernBertModel``): pre-norm layers, rotary positions with a
theta per layer type, global and sliding-window attention, GeGLU, final norm."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops import EncoderGraph, GraphInputs, Ops
from . import GraphWriter
from ._weights import dense, norm, table


def _layer_norm(ops: Ops, x: Any, module: Any, name: str) -> Any:
    return ops.layer_norm(x, *norm(module), module.eps, name)


def _halves(weight: np.ndarray, bias: np.ndarray | None, parts: int):
    """Split a packed projection's output rows into ``parts`` equal linear layers."""
    ws = np.split(weight, parts, axis=0)
    bs = np.split(bias, parts) if bias is not None else [None] * parts
    return list(zip(ws, bs))


def write(encoder: Any, ops: Ops, inputs: GraphInputs, hidden_states: bool) -> EncoderGraph:
    cfg = encoder.config
    ids = inputs.input_ids
    x = ops.embed(table(encoder.embeddings.tok_embeddings), ids, "embeddings.tok_embeddings")
    x = _layer_norm(ops, x, encoder.embeddings.norm, "embeddings.norm")
    positions = ops.positions(ids)
    tokens = ops.token_mask(inputs.attention_mask)
    global_mask = ops.key_padding_mask(tokens)
    masks = {"full_attention": global_mask}
    if "sliding_attention" in cfg.layer_types:
        half = cfg.local_attention // 2
        masks["sliding_attention"] = ops.window_mask(tokens, positions, half, global_mask)
    states = [x] if hidden_states else []
    for i, layer in enumerate(encoder.layers):
        p = f"layers.{i}"
        attn = layer.attn
        h = _layer_norm(ops, x, layer.attn_norm, f"{p}.attn_norm") if "attn_norm" in layer else x
        q, k, v = (
            ops.split_heads(ops.linear(h, w, b, f"{p}.attn.W{n}"), attn.num_heads)
            for n, (w, b) in zip("qkv", _halves(*dense(attn.Wqkv), 3))
        )
        q = ops.rope(q, positions, attn.rope_theta, attn.head_dim, traditional=False)
        k = ops.rope(k, positions, attn.rope_theta, attn.head_dim, traditional=False)
        context = ops.merge_heads(ops.attention(q, k, v, masks[layer.layer_type], attn.scale))
        x = ops.add(x, ops.linear(context, *dense(attn.Wo), f"{p}.attn.Wo"))
        h = _layer_norm(ops, x, layer.mlp_norm, f"{p}.mlp_norm")
        (wi, bi), (wg, bg) = _halves(*dense(layer.mlp.Wi), 2)
        act = ops.act(ops.linear(h, wi, bi, f"{p}.mlp.Wi_input"), cfg.hidden_activation)
        gated = ops.mul(act, ops.linear(h, wg, bg, f"{p}.mlp.Wi_gate"))
        x = ops.add(x, ops.linear(gated, *dense(layer.mlp.Wo), f"{p}.mlp.Wo"))
        if hidden_states:
            states.append(x)
    x = _layer_norm(ops, x, encoder.final_norm, "final_norm")
    if hidden_states:
        states[-1] = x  # transformers 5.x convention, as the encoder returns it
    return EncoderGraph(last_hidden_state=x, tokens=tokens, hidden_states=states)


WRITER = GraphWriter(
    write=write,
    inputs=lambda encoder: ("input_ids", "attention_mask"),
    max_positions=lambda encoder: int(encoder.config.max_position_embeddings),
)

__all__ = ["WRITER", "write"]
