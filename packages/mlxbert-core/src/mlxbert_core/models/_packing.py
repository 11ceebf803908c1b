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

from ._layers import attention

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
        self._inputs = rows * self.width + cols
        self._row_of, self._col_of = rows, cols  # each packed row's cell
        # output grid cell -> packed row; padding -> one extra row of zeros past the packed rows
        grid = np.full(self.batch * self.width, self.rows, dtype=np.int32)
        grid[rows[: self.tokens] * self.width + cols[: self.tokens]] = np.arange(self.tokens)
        self._output_grid = mx.array(grid)
        # attention grid cell -> packed row. A padding cell reads packed row 0 (the first
        # real token): its values only need to be finite, as masked keys and as query rows
        # that are never read back.
        cells = np.zeros((self.batch, self.span), dtype=np.int64)
        cells[rows[: self.tokens], cols[: self.tokens]] = np.arange(self.tokens)
        self._cell_rows = cells
        self._heads: dict[tuple[str, int, int], mx.array] = {}
        # A row with no real token at all opens every key, as key_padding_mask does (its
        # outputs are never read, but must not be NaN inside the attention products).
        keys = np.zeros((self.batch, self.span), dtype=bool)
        keys[:, : min(self.span, self.width)] = mask[:, : self.span]
        #: [batch, span]: which grid cells hold a real token (for masks of other shapes)
        self.grid_tokens = mx.array(keys)
        self.key_mask = mx.array(keys | ~keys.any(axis=1, keepdims=True))[:, None, None, :]

    def pack(self, x: np.ndarray | mx.array) -> mx.array:
        """``[batch, width, ...]`` inputs (token ids, token types) -> ``[rows, ...]``: the
        real tokens' entries, taken on the host."""
        x = np.asarray(x)
        return mx.array(x.reshape(self.batch * self.width, *x.shape[2:])[self._inputs])

    def unpack(self, x: mx.array) -> mx.array:
        """``[rows, features]`` -> ``[batch, width, features]``, zeros at the padding."""
        padded = mx.concatenate([x, mx.zeros((1, x.shape[-1]), dtype=x.dtype)], axis=0)
        return padded[self._output_grid].reshape(self.batch, self.width, x.shape[-1])

    def to_heads(self, x: mx.array, num_heads: int, groups: int = 1) -> mx.array:
        """``[rows, groups * num_heads * d]`` -> ``[groups, batch, num_heads, span, d]``
        (``[batch, num_heads, span, d]`` for one group): packed rows laid out head-major on
        attention's grid in one gather, which leaves the heads contiguous for the attention
        products (a reshape and transpose of the grid would copy them once more)."""
        d = x.shape[-1] // (groups * num_heads)
        index = self._head_index("to", num_heads, groups)
        return x.reshape(self.rows * groups * num_heads, d)[index]

    def from_heads(self, x: mx.array) -> mx.array:
        """``[batch, num_heads, span, d]`` -> ``[rows, num_heads * d]``: attention's output,
        packed again in one gather."""
        batch, num_heads, span, d = x.shape
        index = self._head_index("from", num_heads, 1)
        return x.reshape(batch * num_heads * span, d)[index].reshape(self.rows, num_heads * d)

    def _head_index(self, way: str, num_heads: int, groups: int) -> mx.array:
        # Built once per forward and head layout, then shared by every layer.
        key = (way, num_heads, groups)
        if key not in self._heads:
            heads = np.arange(num_heads)
            if way == "to":  # [groups, batch, heads, span]: the packed chunk of each cell
                rows = self._cell_rows[None, :, None, :]
                group = np.arange(groups)[:, None, None, None]
                index = (rows * groups + group) * num_heads + heads[None, None, :, None]
                index = index[0] if groups == 1 else index
            else:  # [rows, heads]: the grid cell of each packed row
                cell = self._row_of[:, None] * num_heads + heads[None, :]
                index = cell * self.span + self._col_of[:, None]
            self._heads[key] = mx.array(index.astype(np.int32))
        return self._heads[key]


def packed_attention(
    packing: Packing, q: mx.array, k: mx.array, v: mx.array, *, num_heads: int, scale: float
) -> mx.array:
    """Attention of packed ``[rows, hidden]`` queries, keys and values: laid out head-major
    on the padded grid, attended with the padding mask, packed again."""
    q, k, v = (packing.to_heads(t, num_heads) for t in (q, k, v))
    out, _ = attention(q, k, v, scale=scale, mask=packing.key_mask)
    return packing.from_heads(out)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


__all__ = ["SPAN_MULTIPLE", "TOKEN_MULTIPLE", "Packing", "packed_attention"]
