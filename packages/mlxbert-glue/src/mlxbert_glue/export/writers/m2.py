"""M2-BERT (mlxbert-m2's ``M2BertModel``): Monarch Mixer layers — a gated short causal
convolution and two implicit long convolutions (Hyena filters generated from positional
features, applied as FFT convolutions: ONNX's ``DFT``) instead of attention, and a gated
MLP with dense or block-diagonal weights.

Everything is read from the modules (duck typing); nothing here imports mlxbert-m2. The
filters are generated inside the graph at the run-time length, as the encoder does, so the
graph takes any length up to the model's. An MLX function file is not possible: MLX's FFT
length is fixed when a function is traced, and M2's FFT length follows the input's.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from ..errors import ExportError
from ..ops import EncoderGraph, GraphInputs, Ops
from . import GraphWriter
from ._weights import dense, norm, table


def _np(value: mx.array) -> np.ndarray:
    return np.array(value.astype(mx.float32))


def _layer_norm(ops: Ops, x: Any, module: Any, name: str) -> Any:
    return ops.layer_norm(x, *norm(module), module.eps, name)


def _linear_weights(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight (out, in), bias) of a dense or block-diagonal layer (expanded to dense:
    the zero blocks add exact zeros)."""
    if "scales" in layer or layer.weight.ndim == 2:
        return dense(layer)
    blocks = _np(layer.weight)  # (nblocks, out/nb, in/nb)
    nb, q, p = blocks.shape
    weight = np.zeros((nb * q, nb * p), np.float32)
    for b in range(nb):
        weight[b * q : (b + 1) * q, b * p : (b + 1) * p] = blocks[b]
    bias = layer.get("bias")
    return weight, None if bias is None else _np(bias)


def _rows(weight: np.ndarray, bias: np.ndarray | None, parts: int):
    ws = np.split(weight, parts, axis=0)
    bs = np.split(bias, parts) if bias is not None else [None] * parts
    return list(zip(ws, bs))


def _implicit_mlp(ops: Ops, layers: list[Any], sin: Any, z: Any, name: str) -> Any:
    """Linear, Sin, Linear, Sin, Linear, Sin, Linear; every Sin is the filter's shared one:
    ``sin(w_mod * freq * x)``."""
    scale = _np(sin.freq) * float(sin._w_mod)
    h = z
    for i, layer in enumerate(layers):
        if "weight" in layer:
            h = ops.linear(h, *dense(layer), f"{name}.{i}")
        else:
            h = ops.elementwise(ops.mul(h, ops.weight(scale, f"{name}.sin")), "sin")
    return h


def _kernel(ops: Ops, filt: Any, positions: Any, name: str) -> Any:
    """The (1, 2S, D) time-domain kernel of the length-S circular convolution."""
    z = ops.embed(_np(filt.pos_emb.z)[0], positions, f"{name}.pos_emb.z")  # (1, S, E)
    t = ops.embed(_np(filt.pos_emb.t)[0], positions, f"{name}.pos_emb.t")  # (1, S, 1)
    rate = ops.weight(np.abs(_np(filt.modulation.deltas)) * -1.0, f"{name}.decay")
    decay = ops.elementwise(ops.mul(t, rate), "exp")  # exp(-t |deltas|)
    sin = filt.implicit_filter[1]
    forward = ops.mul(_implicit_mlp(ops, filt.implicit_filter, sin, z, f"{name}.fwd"), decay)
    if not filt.bidirectional:
        return ops.concat([forward, ops.zeros_like(forward)], axis=1)
    rev = ops.mul(_implicit_mlp(ops, filt.implicit_filter_rev, sin, z, f"{name}.rev"), decay)
    return ops.concat([forward, ops.reverse(rev, axis=1)], axis=1)


def _mixer(ops: Ops, mixer: Any, x: Any, positions: Any, name: str) -> Any:
    u = _layer_norm(ops, x, mixer.layernorm, f"{name}.layernorm") if (
        mixer.hyena_training_additions
    ) else x  # fmt: skip
    conv_w, conv_b = _np(mixer.short_filter.weight), _np(mixer.short_filter.bias)
    d = mixer.d_model
    parts = []
    for j, ((w, b), part) in enumerate(zip(_rows(*dense(mixer.in_linear), 3), ("x1", "x2", "v"))):
        projected = ops.linear(u, w, b, f"{name}.in_linear.{part}")
        rows = slice(j * d, (j + 1) * d)  # the depthwise filter's channels of this part
        parts.append(ops.causal_depthwise_conv(projected, conv_w[rows], conv_b[rows]))
    x1, x2, v = parts
    v = ops.mul(v, x1)
    bias = ops.weight(_np(mixer.filter_fn.bias), f"{name}.filter_fn.bias")
    conv = ops.circular_convolution(v, _kernel(ops, mixer.filter_fn, positions, f"{name}.f1"))
    y = ops.mul(ops.add(conv, ops.mul(v, bias)), x2)
    if mixer.residual_long_conv:
        bias2 = ops.weight(_np(mixer.filter_fn2.bias), f"{name}.filter_fn2.bias")
        conv2 = ops.circular_convolution(u, _kernel(ops, mixer.filter_fn2, positions, f"{name}.f2"))
        y = ops.add(ops.add(y, conv2), ops.mul(u, bias2))
    return ops.linear(y, *dense(mixer.out_linear), f"{name}.out_linear")


def _mlp(ops: Ops, mlp: Any, a: Any, name: str) -> Any:
    (wi, bi), (wg, bg) = _rows(*_linear_weights(mlp.gated_layers), 2)
    h = ops.mul(
        ops.act(ops.linear(a, wi, bi, f"{name}.gated_layers.input"), "gelu"),
        ops.linear(a, wg, bg, f"{name}.gated_layers.gate"),
    )
    out = ops.linear(h, *_linear_weights(mlp.wo), f"{name}.wo")
    return _layer_norm(ops, ops.add(out, a), mlp.layernorm, f"{name}.layernorm")


def write(encoder: Any, ops: Ops, inputs: GraphInputs, hidden_states: bool) -> EncoderGraph:
    emb = encoder.embeddings
    ids = inputs.input_ids
    positions = ops.positions(ids)
    x = ops.embed(table(emb.word_embeddings), ids, "embeddings.word_embeddings")
    x = ops.add(
        x,
        ops.embed(table(emb.token_type_embeddings), inputs.token_type_ids, "embeddings.type"),
    )
    if emb.use_positional_encodings:
        x = ops.add(x, ops.embed(table(emb.position_embeddings), positions, "embeddings.pos"))
    x = _layer_norm(ops, x, emb.LayerNorm, "embeddings.LayerNorm")
    states = [x] if hidden_states else []
    for i, layer in enumerate(encoder.encoder.layer):
        x = _mixer(ops, layer.attention, x, positions, f"encoder.layer.{i}.attention")
        x = _mlp(ops, layer.mlp, x, f"encoder.layer.{i}.mlp")
        if hidden_states:
            states.append(x)
    tokens = ops.token_mask(inputs.attention_mask)
    pooled = None
    if encoder.has_pooler:
        pooler = encoder.pooler
        if pooler.pool_all:  # masked mean, the count unclamped as in the encoder
            v = ops.masked_mean(x, tokens, 0.0)
        else:
            v = ops.first_token(x)
        pooled = ops.act(ops.linear(v, *dense(pooler.dense), "pooler.dense"), "tanh")
    return EncoderGraph(last_hidden_state=x, tokens=tokens, pooler_output=pooled,
                        hidden_states=states)  # fmt: skip


def check(encoder: Any, fmt: str) -> None:
    if fmt == "mlxfn":
        raise ExportError(
            "M2-BERT cannot be exported as an MLX function file: its long convolutions are "
            "FFTs whose length follows the input's, and MLX fixes an FFT's length when a "
            "function is traced (shapeless export needs it to vary); export it as onnx"
        )
    if encoder.has_pooler and encoder.pooler.planting:
        raise ExportError(
            "M2-BERT with sequence_token_planting has no graph form: its pooler averages "
            "planted tokens over the whole batch"
        )


WRITER = GraphWriter(
    write=write,
    inputs=lambda encoder: ("input_ids", "attention_mask", "token_type_ids"),
    max_positions=lambda encoder: int(encoder.config.max_length),
    check=check,
)

__all__ = ["WRITER", "write"]
