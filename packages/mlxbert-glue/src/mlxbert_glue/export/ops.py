"""The operations an export graph is written with, independent of the target format.

A *graph writer* (one per encoder family, see :mod:`.writers`) describes a forward pass with
the methods of :class:`Ops`; a backend turns each call into something concrete:

* :class:`~.onnx_ops.OnnxOps` appends ONNX nodes (tensors are value names);
* :class:`~.mlx_ops.MlxOps` computes with MLX arrays in a form that ``mx.export_function``
  can trace *shapeless* (no slicing, no shape-dependent reshapes), for the ``mlxfn`` format.

Weights come in as float32 NumPy arrays; the backend stores them in its compute dtype.
Softmax, normalisation statistics and activations run in float32 whatever that dtype is,
as mlxbert's encoders do. Boolean masks follow mlxbert-core: ``True`` = may attend; a row
without any real token is opened fully so that it stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Activation names (Hugging Face ``hidden_act`` spellings and mlxbert-heads' names) ->
#: the function an :class:`Ops` backend computes.
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
}

DTYPES = ("float32", "float16")


@dataclass
class GraphInputs:
    """The graph's inputs as backend tensors (``token_type_ids`` only for encoders that use
    segment ids)."""

    input_ids: Any
    attention_mask: Any
    token_type_ids: Any = None


@dataclass
class EncoderGraph:
    """What a graph writer returns: the encoder's outputs as backend tensors.

    ``hidden_states`` follows the encoder's own ``output_hidden_states`` convention (it is
    filled only when the writer was asked for it); ``tokens`` is the boolean real-token mask.
    """

    last_hidden_state: Any
    tokens: Any
    pooler_output: Any = None
    hidden_states: list[Any] = field(default_factory=list)


def contiguous(array: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """A C-contiguous copy when needed, keeping 0-d arrays 0-d (``np.ascontiguousarray``
    makes them 1-d)."""
    out = np.asarray(array, dtype=dtype)
    return out if out.flags.c_contiguous else np.ascontiguousarray(out)


def rope_tables(
    theta: float, dim: int, max_positions: int, traditional: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos, sin, rotation)`` for rotary embeddings: ``x * cos[p] + (x @ rotation) * sin[p]``.

    ``cos`` and ``sin`` are (max_positions, dim) float32 tables (computed in float64);
    ``rotation`` is the (dim, dim) signed permutation that maps ``x`` to ``rotate_half(x)``
    (``traditional=False``: halves, as transformers' ``rotate_half``) or to the rotated
    adjacent pairs (``traditional=True``, NeoBERT's complex-number form). A product with a
    signed permutation is exact, so this equals slicing and negating, without slices.
    """
    half = dim // 2
    inv_freq = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / dim)
    angles = np.arange(max_positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    rotation = np.zeros((dim, dim), np.float32)
    if traditional:
        freq = np.repeat(angles, 2, axis=1)
        for i in range(half):
            rotation[2 * i + 1, 2 * i] = -1.0
            rotation[2 * i, 2 * i + 1] = 1.0
    else:
        freq = np.concatenate([angles, angles], axis=1)
        for j in range(half):
            rotation[j + half, j] = -1.0
            rotation[j, j + half] = 1.0
    return np.cos(freq).astype(np.float32), np.sin(freq).astype(np.float32), rotation


class Ops:
    """The vocabulary of export graphs (see the module doc). Tensors are opaque to writers."""

    dtype: str = "float32"
    #: The longest input the graph takes (sizes position tables).
    max_positions: int = 512

    # -- constants -----------------------------------------------------------------------
    def weight(self, array: np.ndarray, name: str) -> Any:
        """A float constant, stored in the compute dtype."""
        raise NotImplementedError

    def constant(self, array: np.ndarray, name: str) -> Any:
        """A constant kept in its own dtype (float32 tables, integer indices)."""
        raise NotImplementedError

    # -- arithmetic ----------------------------------------------------------------------
    def add(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def mul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def matmul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def linear(self, x: Any, weight: np.ndarray, bias: np.ndarray | None, name: str) -> Any:
        """``x @ weight.T + bias`` (``weight``: (out, in), as ``mlx.nn.Linear`` stores it)."""
        raise NotImplementedError

    def act(self, x: Any, name: str) -> Any:
        """An activation by its :data:`ACTIVATIONS` name."""
        raise NotImplementedError

    def layer_norm(
        self, x: Any, weight: np.ndarray | None, bias: np.ndarray | None, eps: float, name: str
    ) -> Any:
        raise NotImplementedError

    def rms_norm(self, x: Any, weight: np.ndarray, eps: float, name: str) -> Any:
        raise NotImplementedError

    def to_float32(self, x: Any) -> Any:
        raise NotImplementedError

    # -- embeddings, positions, masks ------------------------------------------------------
    def embed(self, table: np.ndarray, ids: Any, name: str) -> Any:
        """Rows of ``table`` (a weight) at integer ``ids``."""
        raise NotImplementedError

    def positions(self, input_ids: Any) -> Any:
        """Integer positions 0..S-1, broadcastable against (batch, S)."""
        raise NotImplementedError

    def token_mask(self, attention_mask: Any) -> Any:
        """(batch, S) boolean: the token is real."""
        raise NotImplementedError

    def key_padding_mask(self, tokens: Any) -> Any:
        """(batch, 1, 1, S) boolean over keys; rows with no real token are opened fully."""
        raise NotImplementedError

    def window_mask(self, tokens: Any, positions: Any, half_window: int, global_mask: Any) -> Any:
        """Sliding-window mask ``|i - j| <= half_window`` combined with key padding (padded
        queries ignore padding), or ``global_mask`` when the window spans the whole
        sequence — mlxbert-core's ModernBERT masks, chosen from the length at run time."""
        raise NotImplementedError

    # -- attention -------------------------------------------------------------------------
    def split_heads(self, x: Any, heads: int) -> Any:
        """(batch, S, heads*D) -> (batch, heads, S, D)."""
        raise NotImplementedError

    def merge_heads(self, x: Any) -> Any:
        """(batch, heads, S, D) -> (batch, S, heads*D)."""
        raise NotImplementedError

    def rope(self, x: Any, positions: Any, theta: float, dim: int, traditional: bool) -> Any:
        """Rotary position embedding of (batch, heads, S, ``dim``) ``x`` (see
        :func:`rope_tables`)."""
        raise NotImplementedError

    def attention(self, q: Any, k: Any, v: Any, mask: Any, scale: float) -> Any:
        """softmax(q·kᵀ·scale, masked) · v on (batch, heads, S, D); softmax in float32."""
        raise NotImplementedError

    # -- pooling ---------------------------------------------------------------------------
    def first_token(self, x: Any) -> Any:
        raise NotImplementedError

    def masked_mean(self, x: Any, tokens: Any, min_count: float) -> Any:
        """Mean over real tokens; the count is clamped below at ``min_count``."""
        raise NotImplementedError

    def masked_max(self, x: Any, tokens: Any, zero_empty: bool) -> Any:
        """Feature-wise max over real tokens (``zero_empty``: rows without one give 0)."""
        raise NotImplementedError

    def attention_pool(self, x: Any, tokens: Any, weight: np.ndarray, bias: np.ndarray) -> Any:
        """mlxbert-heads' attention pooling: a linear score per token, softmax over real
        tokens, weighted sum (rows without a real token give 0)."""
        raise NotImplementedError

    def l2_normalize(self, x: Any, eps: float) -> Any:
        raise NotImplementedError

    def softmax_mix(self, tensors: list[Any], logits: np.ndarray) -> Any:
        """``sum_i softmax(logits)_i * tensors[i]`` (weighted-layer pooling)."""
        raise NotImplementedError

    def subtract_from(self, constant: np.ndarray, x: Any, name: str) -> Any:
        """``constant[None, :] - x`` (an ordinal head's cut-points minus its score)."""
        raise NotImplementedError

    def unflatten_last(self, x: Any, shape: tuple[int, ...]) -> Any:
        """Split the last axis into ``shape``."""
        raise NotImplementedError

    # -- sequence mixing without attention (long convolutions) ------------------------------
    def elementwise(self, x: Any, kind: str) -> Any:
        """``sin``, ``exp`` or ``abs`` of every element."""
        raise NotImplementedError

    def concat(self, tensors: list[Any], axis: int) -> Any:
        raise NotImplementedError

    def reverse(self, x: Any, axis: int) -> Any:
        """``x`` reversed along a sequence axis (of run-time length)."""
        raise NotImplementedError

    def zeros_like(self, x: Any) -> Any:
        raise NotImplementedError

    def causal_depthwise_conv(self, x: Any, weight: np.ndarray, bias: np.ndarray) -> Any:
        """Per-channel causal convolution of (batch, S, C) ``x`` along S: ``weight`` is
        (C, 1, K) (PyTorch's depthwise ``Conv1d`` layout), output ``t`` sees inputs
        ``t-K+1 .. t``."""
        raise NotImplementedError

    def circular_convolution(self, u: Any, kernel: Any) -> Any:
        """Per-channel circular convolution of (batch, S, C) ``u`` zero-padded to 2S with a
        (1, 2S, C) ``kernel``, first S outputs (an FFT convolution)."""
        raise NotImplementedError


__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "EncoderGraph",
    "GraphInputs",
    "Ops",
    "contiguous",
    "rope_tables",
]
