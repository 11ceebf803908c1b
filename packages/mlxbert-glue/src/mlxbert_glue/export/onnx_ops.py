"""The ONNX backend of :class:`~.ops.Ops`: every call appends nodes to one graph.

Built with the ``onnx`` package's helpers only (no torch, no tracing). Batch and sequence
axes stay symbolic; the position-dependent tables (rotary angles, position embeddings) are
sliced or gathered at the run-time length.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .ops import ACTIVATIONS, Ops, contiguous, rope_tables

_FLOAT32_MIN = float(np.finfo(np.float32).min)
_NP_DTYPES = {"float32": np.float32, "float16": np.float16}
_ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654

#: The oldest opset the graphs are written for (LayerNormalization is opset 17).
MIN_OPSET = 17


class OnnxOps(Ops):
    """Collects nodes and initializers; :meth:`model` assembles the ``ModelProto``."""

    def __init__(self, *, dtype: str = "float32", opset: int = 20, max_positions: int = 512):
        self.dtype = dtype
        self.opset = int(opset)
        self.max_positions = int(max_positions)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._counter = itertools.count()
        self._cache: dict[Any, str] = {}

    # -- bookkeeping ---------------------------------------------------------------------
    def _fresh(self, hint: str) -> str:
        name = hint
        while name in self._names:
            name = f"{hint}_{next(self._counter)}"
        self._names.add(name)
        return name

    def node(self, op: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        """One node with one output; returns the output's name."""
        out = self._fresh(hint or f"{op.lower()}_{len(self.nodes)}")
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def node_n(self, op: str, inputs: list[str], count: int, **attrs: Any) -> list[str]:
        outs = [self._fresh(f"{op.lower()}_{len(self.nodes)}_{i}") for i in range(count)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs

    def _init(self, array: np.ndarray, name: str) -> str:
        out = self._fresh(name)
        self.initializers.append(numpy_helper.from_array(contiguous(array), out))
        return out

    def _const(self, key: Any, array: np.ndarray, name: str) -> str:
        """A small shared constant (one initializer per distinct value)."""
        if key not in self._cache:
            self._cache[key] = self._init(array, name)
        return self._cache[key]

    def ints(self, values: list[int]) -> str:
        return self._const(("i64", tuple(values)), np.array(values, np.int64), "const_i64")

    def scalar(self, value: float, dtype: str | None = None) -> str:
        dtype = dtype or self.dtype
        key = ("scalar", dtype, float(value))
        return self._const(key, np.array(value, _NP_DTYPES[dtype]), "const")

    def _reduce(self, op: str, x: str, axes: list[int], keepdims: int = 1) -> str:
        if op == "ReduceSum" or self.opset >= 18:
            return self.node(op, [x, self.ints(axes)], keepdims=keepdims)
        return self.node(op, [x], axes=axes, keepdims=keepdims)

    def _unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.node("Unsqueeze", [x, self.ints(axes)])

    def _cast(self, x: str, to: int) -> str:
        return self.node("Cast", [x], to=to)

    def _to_compute(self, x: str) -> str:
        """float32 -> the compute dtype (no node in float32)."""
        return x if self.dtype == "float32" else self._cast(x, _ONNX_DTYPES[self.dtype])

    # -- constants -----------------------------------------------------------------------
    def weight(self, array: np.ndarray, name: str) -> str:
        return self._init(np.asarray(array, np.float32).astype(_NP_DTYPES[self.dtype]), name)

    def constant(self, array: np.ndarray, name: str) -> str:
        return self._init(np.asarray(array), name)

    # -- arithmetic ----------------------------------------------------------------------
    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.node("Mul", [a, b])

    def matmul(self, a: str, b: str) -> str:
        return self.node("MatMul", [a, b])

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        out = self.matmul(x, self.weight(np.asarray(weight).T, f"{name}.weight"))
        if bias is not None:
            out = self.add(out, self.weight(bias, f"{name}.bias"))
        return out

    def to_float32(self, x: str) -> str:
        return x if self.dtype == "float32" else self._cast(x, TensorProto.FLOAT)

    def act(self, x: str, name: str) -> str:
        kind = ACTIVATIONS.get(name)
        if kind is None:
            raise ValueError(f"activation {name!r} has no graph form")
        if kind in ("relu", "tanh"):
            return self.node("Relu" if kind == "relu" else "Tanh", [x])
        if kind in ("gelu", "gelu_tanh") and self.dtype == "float32" and self.opset >= 20:
            # The opset-20 operator: onnxruntime runs it as one kernel (and fuses the bias
            # add before it), where the formula below stays five elementwise passes.
            return self.node("Gelu", [x], approximate="none" if kind == "gelu" else "tanh")
        v = self.to_float32(x)  # computed in float32, as mlxbert's kernels do
        if kind == "silu":
            return self._to_compute(self.mul(v, self.node("Sigmoid", [v])))
        if kind == "gelu":
            inner = self.node("Erf", [self.mul(v, self.scalar(_SQRT_HALF, "float32"))])
        else:  # gelu_tanh
            cube = self.mul(self.mul(v, v), v)
            poly = self.add(v, self.mul(cube, self.scalar(0.044715, "float32")))
            inner = self.node("Tanh", [self.mul(poly, self.scalar(_SQRT_2_OVER_PI, "float32"))])
        half_v = self.mul(v, self.scalar(0.5, "float32"))
        out = self.mul(half_v, self.add(inner, self.scalar(1.0, "float32")))
        return self._to_compute(out)

    def layer_norm(
        self, x: str, weight: np.ndarray | None, bias: np.ndarray | None, eps: float, name: str
    ) -> str:
        width = len(weight) if weight is not None else len(bias)
        scale = self.weight(np.ones(width) if weight is None else weight, f"{name}.weight")
        inputs = [x, scale]
        if bias is not None:
            inputs.append(self.weight(bias, f"{name}.bias"))
        return self.node("LayerNormalization", inputs, axis=-1, epsilon=float(eps), stash_type=1)

    def rms_norm(self, x: str, weight: np.ndarray, eps: float, name: str) -> str:
        v = self.to_float32(x)
        mean_sq = self._reduce("ReduceMean", self.mul(v, v), [-1])
        inv = self.node(
            "Reciprocal", [self.node("Sqrt", [self.add(mean_sq, self.scalar(eps, "float32"))])]
        )
        normed = self._to_compute(self.mul(v, inv))
        return self.mul(normed, self.weight(weight, f"{name}.weight"))

    # -- embeddings, positions, masks ------------------------------------------------------
    def embed(self, table: np.ndarray, ids: str, name: str) -> str:
        return self.node("Gather", [self.weight(table, name), ids], axis=0)

    def seq_len(self, input_ids: str) -> str:
        """(1,) int64: the run-time sequence length."""
        if "seq_len" not in self._cache:
            self._cache["seq_len"] = self.node("Shape", [input_ids], "seq_len", start=1, end=2)
        return self._cache["seq_len"]

    def positions(self, input_ids: str) -> str:
        if "positions" not in self._cache:
            length = self.node("Squeeze", [self.seq_len(input_ids), self.ints([0])])
            zero = self._const(("i64s", 0), np.array(0, np.int64), "zero")
            one = self._const(("i64s", 1), np.array(1, np.int64), "one")
            ramp = self.node("Range", [zero, length, one])
            self._cache["positions"] = self._unsqueeze(ramp, [0])  # (1, S)
        return self._cache["positions"]

    def token_mask(self, attention_mask: str) -> str:
        return self.node("Cast", [attention_mask], "tokens", to=TensorProto.BOOL)

    def key_padding_mask(self, tokens: str) -> str:
        count = self._reduce("ReduceMax", self._cast(tokens, TensorProto.INT64), [1])
        empty = self.node("Equal", [count, self.ints([0])])  # (B, 1)
        return self._unsqueeze(self.node("Or", [tokens, empty]), [1, 2])

    def window_mask(self, tokens: str, positions: str, half_window: int, global_mask: str) -> str:
        rows = self._unsqueeze(positions, [2])  # (1, S, 1)
        cols = self._unsqueeze(positions, [1])  # (1, 1, S)
        dist = self.node("Abs", [self.node("Sub", [rows, cols])])
        window = self.node("LessOrEqual", [dist, self.ints([half_window])])  # (1, S, S)
        keys = self._unsqueeze(tokens, [1])  # (B, 1, S)
        pad_queries = self._unsqueeze(self.node("Not", [tokens]), [2])  # (B, S, 1)
        allowed = self.node("Or", [keys, pad_queries])
        local = self._unsqueeze(self.node("And", [window, allowed]), [1])  # (B, 1, S, S)
        last = self._reduce("ReduceMax", positions, [0, 1], keepdims=0)
        spans = self.node("LessOrEqual", [last, self._scalar_i64(half_window)])
        # Where has no boolean kernel in onnxruntime: choose with And / Or.
        use_global = self.node("And", [spans, global_mask])
        use_local = self.node("And", [self.node("Not", [spans]), local])
        return self.node("Or", [use_global, use_local])

    def _scalar_i64(self, value: int) -> str:
        return self._const(("i64s", value), np.array(value, np.int64), "const_i64")

    # -- attention -------------------------------------------------------------------------
    def split_heads(self, x: str, heads: int) -> str:
        shaped = self.node("Reshape", [x, self.ints([0, 0, heads, -1])])
        return self.node("Transpose", [shaped], perm=[0, 2, 1, 3])

    def merge_heads(self, x: str) -> str:
        moved = self.node("Transpose", [x], perm=[0, 2, 1, 3])
        return self.node("Reshape", [moved, self.ints([0, 0, -1])])

    def _rope_tables(self, theta: float, dim: int, traditional: bool) -> tuple[str, str, str]:
        key = ("rope", float(theta), dim, traditional)
        if key not in self._cache:
            cos, sin, rot = rope_tables(theta, dim, self.max_positions, traditional)
            tag = f"rope_{'pairs' if traditional else 'halves'}_{theta:g}"
            self._cache[key] = (
                self.weight(cos, f"{tag}.cos"),
                self.weight(sin, f"{tag}.sin"),
                self.weight(rot, f"{tag}.rotation"),
            )
        return self._cache[key]

    def rope(self, x: str, positions: str, theta: float, dim: int, traditional: bool) -> str:
        cos, sin, rot = self._rope_tables(theta, dim, traditional)
        cos_p = self.node("Gather", [cos, positions], axis=0)
        sin_p = self.node("Gather", [sin, positions], axis=0)  # (1, S, D): broadcasts over heads
        rotated = self.matmul(x, rot)
        return self.add(self.mul(x, cos_p), self.mul(rotated, sin_p))

    def attention(self, q: str, k: str, v: str, mask: str, scale: float) -> str:
        scores = self.matmul(
            self.mul(q, self.scalar(scale)), self.node("Transpose", [k], perm=[0, 1, 3, 2])
        )
        scores = self.to_float32(scores)
        if mask is not None:
            scores = self.node("Where", [mask, scores, self.scalar(_FLOAT32_MIN, "float32")])
        probs = self._to_compute(self.node("Softmax", [scores], axis=-1))
        return self.matmul(probs, v)

    # -- pooling ---------------------------------------------------------------------------
    def first_token(self, x: str) -> str:
        return self.node("Gather", [x, self._scalar_i64(0)], axis=1)

    def _weights(self, tokens: str) -> str:
        return self._unsqueeze(self._cast(tokens, TensorProto.FLOAT), [2])  # (B, S, 1)

    def masked_mean(self, x: str, tokens: str, min_count: float) -> str:
        w = self._weights(tokens)
        total = self._reduce("ReduceSum", self.mul(self.to_float32(x), w), [1], keepdims=0)
        count = self._reduce("ReduceSum", w, [1], keepdims=0)
        count = self.node("Max", [count, self.scalar(min_count, "float32")])
        return self._to_compute(self.node("Div", [total, count]))

    def masked_max(self, x: str, tokens: str, zero_empty: bool) -> str:
        keep = self._unsqueeze(tokens, [2])
        lowest = self.scalar(float(np.finfo(_NP_DTYPES[self.dtype]).min))
        pooled = self._reduce("ReduceMax", self.node("Where", [keep, x, lowest]), [1], keepdims=0)
        if not zero_empty:
            return pooled
        count = self._reduce("ReduceMax", self._cast(tokens, TensorProto.INT64), [1])
        has = self.node("Greater", [count, self.ints([0])])  # (B, 1)
        return self.node("Where", [has, pooled, self.scalar(0.0)])

    def attention_pool(self, x: str, tokens: str, weight: np.ndarray, bias: np.ndarray) -> str:
        scores = self.node(
            "Squeeze", [self.linear(x, weight, bias, "pooler.scorer"), self.ints([2])]
        )
        lowest = self.scalar(float(np.finfo(_NP_DTYPES[self.dtype]).min))
        scores = self.to_float32(self.node("Where", [tokens, scores, lowest]))
        probs = self._to_compute(self.node("Softmax", [scores], axis=-1))
        count = self._reduce("ReduceMax", self._cast(tokens, TensorProto.INT64), [1])
        has = self._cast(self.node("Greater", [count, self.ints([0])]), _ONNX_DTYPES[self.dtype])
        weights = self._unsqueeze(self.mul(probs, has), [2])
        return self._reduce("ReduceSum", self.mul(weights, x), [1], keepdims=0)

    def l2_normalize(self, x: str, eps: float) -> str:
        v = self.to_float32(x)
        norm = self.node("Sqrt", [self._reduce("ReduceSum", self.mul(v, v), [-1])])
        norm = self.node("Max", [norm, self.scalar(eps, "float32")])
        return self._to_compute(self.node("Div", [v, norm]))

    def softmax_mix(self, tensors: list[str], logits: np.ndarray) -> str:
        z = np.exp(logits.astype(np.float64) - logits.max())
        weights = (z / z.sum()).astype(np.float32)
        out = None
        for i, t in enumerate(tensors):
            term = self.mul(t, self.scalar(float(weights[i])))
            out = term if out is None else self.add(out, term)
        return out

    def subtract_from(self, constant: np.ndarray, x: str, name: str) -> str:
        return self.node("Sub", [self.weight(constant[None, :], name), x])

    def unflatten_last(self, x: str, shape: tuple[int, ...]) -> str:
        return self.node("Reshape", [x, self.ints([0, *shape])])

    # -- sequence mixing without attention ----------------------------------------------------
    def elementwise(self, x: str, kind: str) -> str:
        return self.node({"sin": "Sin", "exp": "Exp", "abs": "Abs"}[kind], [x])

    def concat(self, tensors: list[str], axis: int) -> str:
        return self.node("Concat", list(tensors), axis=axis)

    def reverse(self, x: str, axis: int) -> str:
        big = np.iinfo(np.int64)
        return self.node(
            "Slice", [x, self.ints([-1]), self.ints([int(big.min)]), self.ints([axis]),
                      self.ints([-1])],
        )  # fmt: skip

    def zeros_like(self, x: str) -> str:
        return self.mul(x, self.scalar(0.0))

    def _shift(self, padded: str, start: int, stop_from_end: int) -> str:
        """``padded[:, start : len - stop_from_end]`` along axis 1."""
        end = -stop_from_end if stop_from_end else int(np.iinfo(np.int64).max)
        return self.node("Slice", [padded, self.ints([start]), self.ints([end]), self.ints([1])])

    def causal_depthwise_conv(self, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        k = weight.shape[-1]
        pads = self.ints([0, k - 1, 0, 0, 0, 0])  # k-1 zeros before the first position
        padded = self.node("Pad", [x, pads])
        out = self.weight(bias, "conv.bias")
        for i in range(k):  # tap i multiplies x[t - (k - 1 - i)]
            tap = self.weight(np.ascontiguousarray(weight[:, 0, i]), f"conv.tap{i}")
            out = self.add(out, self.mul(self._shift(padded, i, k - 1 - i), tap))
        return out

    def _dft(self, x: str, length: str, inverse: bool) -> str:
        attrs = {"inverse": int(inverse), "onesided": 0}
        if self.opset >= 20:
            axis = self._scalar_i64(1)
            return self.node("DFT", [x, length, axis], **attrs)
        return self.node("DFT", [x, length], axis=1, **attrs)

    def _fft_length(self, double: str) -> str:
        """The smallest power of two >= ``double`` (int64 scalar): onnxruntime's DFT is a
        radix-2 FFT at such lengths and a direct sum, less accurate, at others."""
        as_float = self.node("Cast", [double], to=TensorProto.FLOAT)
        log2 = self.node("Div", [self.node("Log", [as_float]), self.scalar(np.log(2.0), "float32")])
        guess = self.node("Pow", [self.scalar(2.0, "float32"), self.node("Round", [log2])])
        guess = self.node("Cast", [guess], to=TensorProto.INT64)
        short = self.node("Less", [guess, double])
        return self.node("Where", [short, self.node("Mul", [guess, self._scalar_i64(2)]), guess])

    def circular_convolution(self, u: str, kernel: str) -> str:
        # The length-2S circular convolution equals a length-N one (N >= 2S) once the
        # kernel's second half (its negative shifts) is moved to the end of N: zeros go in
        # between, and the input is zero-padded to N by the DFT itself.
        length = self.node("Squeeze", [self.node("Shape", [u], start=1, end=2), self.ints([0])])
        double = self.node("Mul", [length, self._scalar_i64(2)])
        n = self._fft_length(double)
        kernel = self.to_float32(kernel)
        ends = self.node("Unsqueeze", [length, self.ints([0])])
        front = self.node("Slice", [kernel, self.ints([0]), ends, self.ints([1])])
        back = self.node("Slice", [kernel, ends, self.ints([int(np.iinfo(np.int64).max)]),
                                   self.ints([1])])  # fmt: skip
        gap = self.node("Unsqueeze", [self.node("Sub", [n, double]), self.ints([0])])
        width = self.node("Shape", [kernel], start=2, end=3)
        shape = self.concat([self.ints([1]), gap, width], 0)
        zeros = self.node("ConstantOfShape", [shape], value=helper.make_tensor(
            "zero", TensorProto.FLOAT, [1], [0.0]))  # fmt: skip
        kernel = self.concat([front, zeros, back], 1)
        spec_u = self._dft(self._unsqueeze(self.to_float32(u), [3]), n, False)
        spec_k = self._dft(self._unsqueeze(kernel, [3]), n, False)
        ur, ui = (self.node("Gather", [spec_u, self._scalar_i64(j)], axis=3) for j in (0, 1))
        kr, ki = (self.node("Gather", [spec_k, self._scalar_i64(j)], axis=3) for j in (0, 1))
        real = self.node("Sub", [self.mul(ur, kr), self.mul(ui, ki)])
        imag = self.add(self.mul(ur, ki), self.mul(ui, kr))
        product = self.concat([self._unsqueeze(real, [3]), self._unsqueeze(imag, [3])], 3)
        full = self._dft(product, n, True)  # the inverse includes the 1/N
        out = self.node("Gather", [full, self._scalar_i64(0)], axis=3)  # real part
        head = self.node("Slice", [out, self.ints([0]), ends, self.ints([1])])
        return self._to_compute(head)

    # -- assembly --------------------------------------------------------------------------
    def input(self, name: str) -> str:
        """A (batch, sequence) int64 graph input."""
        self._names.add(name)
        return name

    def model(
        self,
        inputs: list[str],
        outputs: list[tuple[str, str, list[str | int]]],
        *,
        metadata: dict[str, str],
        producer: str,
        version: str,
    ) -> onnx.ModelProto:
        """``inputs``: graph input names; ``outputs``: (name, tensor, dims), written as float32."""
        finals = [(name, self.to_float32(tensor), dims) for name, tensor, dims in outputs]
        nodes = list(self.nodes)
        graph_outputs = []
        for name, final, dims in finals:
            nodes.append(helper.make_node("Identity", [final], [name]))
            graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        graph_inputs = [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
            for name in inputs
        ]
        graph = helper.make_graph(
            nodes, "mlxbert", graph_inputs, graph_outputs, initializer=self.initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            producer_name=producer,
            producer_version=version,
        )
        model.ir_version = min(model.ir_version, 10)
        helper.set_model_props(model, metadata)
        return model


__all__ = ["MIN_OPSET", "OnnxOps"]
