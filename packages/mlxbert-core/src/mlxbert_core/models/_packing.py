"""Packed ("unpadded") inference: a padded batch's real tokens as one sequence of tokens.

In a batch of sentences of mixed lengths, every row is padded to the longest, and the
padding costs as much as real text in every per-token part of an encoder (the projections,
the feed-forward block, the layer norms: nearly all of its work). A packed forward computes
those on the real tokens only, ``[tokens, hidden]``, and lays the tokens out on the padded
``[batch, width]`` grid for attention alone, the one step that mixes tokens of a row. This is
what transformers' ModernBERT and text-embeddings-inference do with variable-length
attention kernels; here attention keeps its padded shape and mask, so every architecture's
own attention code is reused.

The real tokens' outputs equal the padded forward's up to float rounding. The padding's rows
of ``last_hidden_state`` are zero (in the padded forward they hold values computed from the
pad token that nothing should read; the reference fixtures compare real tokens only).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ._layers import attention, merge_heads, split_heads

#: The packed sequence is rounded up to a multiple of this many rows, attention's grid width
#: to a multiple of ``SPAN_MULTIPLE`` columns: the compiled elementwise kernels (GELU,
#: softmax) trace and keep one graph per input shape, and a server's forwards would otherwise
#: bring new shapes nearly every time. The extra packed rows repeat a real token and are
#: never read. Coarser rounding (32 tokens, the grid's rows to multiples of 4) cost more in
#: extra rows than it saved in tracing.
TOKEN_MULTIPLE = 8
SPAN_MULTIPLE = 8


class Packing:
    """Where the real tokens of a padded ``[batch, width]`` batch are, from its host mask.

    ``tokens``: the real tokens; ``rows``: the packed sequence's length (``tokens`` rounded
    up to :data:`TOKEN_MULTIPLE`; the rows past ``tokens`` repeat the first token);
    ``positions``: each packed row's column (its absolute position id);
    ``key_mask``: the ``[batch, 1, 1, span]`` boolean mask over keys for attention, where
    ``span`` is the last column that holds a real token, plus one, rounded up to
    :data:`SPAN_MULTIPLE`: attention runs on that grid, whatever padding the batch came with.
    """

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask) != 0
        if mask.ndim != 2:
            raise ValueError(f"a packing needs a [batch, width] mask, got shape {mask.shape}")
        self.batch, self.width = (int(n) for n in mask.shape)
        rows, cols = np.nonzero(mask)  # reading order
        self.tokens = int(rows.size)
        self.rows = max(1, _round_up(self.tokens, TOKEN_MULTIPLE))
        self.span = _round_up(int(cols.max()) + 1 if self.tokens else 1, SPAN_MULTIPLE)
        extra = self.rows - self.tokens  # copies of the first real token (or cell 0)
        rows = np.concatenate([rows, np.full(extra, rows[0] if self.tokens else 0)])
        cols = np.concatenate([cols, np.full(extra, cols[0] if self.tokens else 0)])
        self.positions = mx.array(cols.astype(np.int32))
        self._inputs = mx.array((rows * self.width + cols).astype(np.int32))
        self._attended = mx.array((rows * self.span + cols).astype(np.int32))
        # grid cell -> packed row; padding -> one extra row of zeros past the packed rows
        real = slice(0, self.tokens)
        order = np.arange(self.tokens, dtype=np.int32)
        self._grids = {}
        for name, width in (("output", self.width), ("attention", self.span)):
            grid = np.full(self.batch * width, self.rows, dtype=np.int32)
            grid[rows[real] * width + cols[real]] = order
            self._grids[name] = mx.array(grid)
        # A row with no real token at all opens every key, as key_padding_mask does (its
        # outputs are never read, but must not be NaN inside the attention products).
        keys = np.zeros((self.batch, self.span), dtype=bool)
        keys[:, : min(self.span, self.width)] = mask[:, : self.span]
        #: [batch, span]: which grid cells hold a real token (for masks of other shapes)
        self.grid_tokens = mx.array(keys)
        self.key_mask = mx.array(keys | ~keys.any(axis=1, keepdims=True))[:, None, None, :]

    def pack(self, x: mx.array) -> mx.array:
        """``[batch, width, ...]`` inputs -> ``[rows, ...]``: the real tokens' entries."""
        return x.reshape(self.batch * self.width, *x.shape[2:])[self._inputs]

    def unpack(self, x: mx.array) -> mx.array:
        """``[rows, features]`` -> ``[batch, width, features]``, zeros at the padding."""
        return self._spread(x, "output", self.width)

    def to_attention(self, x: mx.array) -> mx.array:
        """``[rows, features]`` -> ``[batch, span, features]`` for attention."""
        return self._spread(x, "attention", self.span)

    def from_attention(self, x: mx.array) -> mx.array:
        """``[batch, span, features]`` -> ``[rows, features]``."""
        return x.reshape(self.batch * self.span, x.shape[-1])[self._attended]

    def _spread(self, x: mx.array, grid: str, width: int) -> mx.array:
        padded = mx.concatenate([x, mx.zeros((1, x.shape[-1]), dtype=x.dtype)], axis=0)
        return padded[self._grids[grid]].reshape(self.batch, width, x.shape[-1])


def packed_attention(
    packing: Packing, q: mx.array, k: mx.array, v: mx.array, *, num_heads: int, scale: float
) -> mx.array:
    """Attention of packed ``[rows, hidden]`` queries, keys and values: laid out on the
    padded grid (one gather for the three), attended with the padding mask, packed again."""
    cuts = [q.shape[-1], q.shape[-1] + k.shape[-1]]
    grid = packing.to_attention(mx.concatenate([q, k, v], axis=-1))
    q, k, v = (split_heads(t, num_heads) for t in mx.split(grid, cuts, axis=-1))
    out, _ = attention(q, k, v, scale=scale, mask=packing.key_mask)
    return packing.from_attention(merge_heads(out))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


__all__ = ["SPAN_MULTIPLE", "TOKEN_MULTIPLE", "Packing", "packed_attention"]
