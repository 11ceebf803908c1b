"""BERT (mlxbert-core's ``BertModel``: BERT, MiniLM, ...): post-norm layers, absolute
positions, segment ids, optional pooler."""

from __future__ import annotations

from typing import Any

from ..ops import EncoderGraph, GraphInputs, Ops
from . import GraphWriter
from ._weights import dense, norm, table


def _layer_norm(ops: Ops, x: Any, module: Any, name: str) -> Any:
    return ops.layer_norm(x, *norm(module), module.eps, name)


def write(encoder: Any, ops: Ops, inputs: GraphInputs, hidden_states: bool) -> EncoderGraph:
    cfg = encoder.config
    emb = encoder.embeddings
    ids = inputs.input_ids
    positions = ops.positions(ids)
    x = ops.embed(table(emb.word_embeddings), ids, "embeddings.word_embeddings")
    positions_table = table(emb.position_embeddings)[: ops.max_positions]
    x = ops.add(x, ops.embed(positions_table, positions, "embeddings.position_embeddings"))
    x = ops.add(
        x,
        ops.embed(table(emb.token_type_embeddings), inputs.token_type_ids, "embeddings.token_type"),
    )
    x = _layer_norm(ops, x, emb.LayerNorm, "embeddings.LayerNorm")
    tokens = ops.token_mask(inputs.attention_mask)
    mask = ops.key_padding_mask(tokens)
    states = [x] if hidden_states else []
    heads = cfg.num_attention_heads
    for i, layer in enumerate(encoder.encoder.layer):
        p = f"encoder.layer.{i}"
        attn = layer.attention.self
        q, k, v = (
            ops.split_heads(ops.linear(x, *dense(m), f"{p}.attention.self.{n}"), heads)
            for n, m in (("query", attn.query), ("key", attn.key), ("value", attn.value))
        )
        context = ops.merge_heads(ops.attention(q, k, v, mask, attn.scale))
        out = ops.linear(context, *dense(layer.attention.output.dense), f"{p}.attention.output")
        x = _layer_norm(ops, ops.add(out, x), layer.attention.output.LayerNorm, f"{p}.ln1")
        h = ops.act(
            ops.linear(x, *dense(layer.intermediate.dense), f"{p}.intermediate"), cfg.hidden_act
        )
        out = ops.linear(h, *dense(layer.output.dense), f"{p}.output")
        x = _layer_norm(ops, ops.add(out, x), layer.output.LayerNorm, f"{p}.ln2")
        if hidden_states:
            states.append(x)
    pooled = None
    if encoder.has_pooler:
        pooled = ops.act(
            ops.linear(ops.first_token(x), *dense(encoder.pooler.dense), "pooler.dense"), "tanh"
        )
    return EncoderGraph(last_hidden_state=x, tokens=tokens, pooler_output=pooled,
                        hidden_states=states)  # fmt: skip


WRITER = GraphWriter(
    write=write,
    inputs=lambda encoder: ("input_ids", "attention_mask", "token_type_ids"),
    max_positions=lambda encoder: int(encoder.config.max_position_embeddings),
)

__all__ = ["WRITER", "write"]
