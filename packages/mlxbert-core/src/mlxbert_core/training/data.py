"""Batches for training: length-bucketed sampling, dynamic padding, sharding.

Examples are tokenized ahead of time (``features["input_ids"]`` is a list of token-id lists);
this module only decides which examples go together and pads each batch to its own longest
sequence, so no step computes on padding it does not need.

**Length bucketing** (:class:`LengthBucketSampler`): each epoch the examples are shuffled,
cut into *mega-batches* of ``mega_batch_factor`` global batches, sorted by length inside each
mega-batch, cut into batches, and the batches are shuffled. Batches then hold examples of
similar length (little padding) while the order stays random at the scale of mega-batches.

**Compilation**: ``mx.compile`` specialises on shapes, so each distinct padded length costs one
compilation (cached afterwards). Rounding lengths up to ``pad_to_multiple_of`` (default 8) or
to a short list of ``length_buckets`` (e.g. ``(64, 128, 256, 512)``) keeps the number of
distinct shapes, and so of compilations, small.

**Sharding** for data parallelism: the sampler always forms *global* batches of
``batch_size * num_shards`` examples with the same seed on every process, and shard ``i`` takes
the ``i``-th contiguous slice of each global batch. The union of the shards' batches is what a
single process with ``batch_size * num_shards`` would see, and every shard yields the same
number of batches (so collective operations never wait for a missing rank).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import mlx.core as mx
import numpy as np

TEXT_FIELDS = ("input_ids", "attention_mask", "token_type_ids")


class LengthBucketSampler:
    """Yields lists of example indices for one shard; one pass per ``iter()``.

    Args:
        lengths: token count of each example.
        batch_size: examples per batch *per shard*.
        shuffle: random order (seeded by ``seed + epoch``); with ``False`` the order is fixed.
        bucket_by_length: sort within mega-batches so batches hold similar lengths.
        mega_batch_factor: global batches per mega-batch.
        drop_last: drop the final incomplete global batch. When kept and sharded, the final
            batch is split as evenly as possible; if it has fewer examples than shards, it is
            completed with examples from the start of the epoch (each shard needs one).
        num_shards, shard_index: data-parallel split (``world_size``, ``rank``).
        seed: base seed; the epoch number is added so each epoch has its own order.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        bucket_by_length: bool = True,
        mega_batch_factor: int = 50,
        drop_last: bool = False,
        num_shards: int = 1,
        shard_index: int = 0,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_shards < 1 or not 0 <= shard_index < num_shards:
            raise ValueError(
                f"shard_index must be in [0, num_shards): got shard_index={shard_index}, "
                f"num_shards={num_shards}"
            )
        if mega_batch_factor < 1:
            raise ValueError(f"mega_batch_factor must be >= 1, got {mega_batch_factor}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1:
            raise ValueError("lengths must be a 1-D sequence of token counts")
        if len(self.lengths) == 0:
            raise ValueError("No examples: the dataset is empty")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.bucket_by_length = bucket_by_length
        self.mega_batch_factor = int(mega_batch_factor)
        self.drop_last = drop_last
        self.num_shards = int(num_shards)
        self.shard_index = int(shard_index)
        self.seed = int(seed)
        self.epoch = 0

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.num_shards

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next ``iter()`` produces."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n, g = len(self.lengths), self.global_batch_size
        return n // g if self.drop_last else math.ceil(n / g)

    def global_batches(self) -> list[np.ndarray]:
        """This epoch's global batches (before sharding), in yield order."""
        n, g = len(self.lengths), self.global_batch_size
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket_by_length:
            mega = g * self.mega_batch_factor
            chunks = [order[i : i + mega] for i in range(0, n, mega)]
            # Stable sort, longest first inside each mega-batch: the first step of an epoch
            # is then the most memory-hungry one, so running out of memory shows at once.
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i : i + g] for i in range(0, n, g)]
        if self.drop_last and len(batches[-1]) < g:
            batches.pop()
        if self.shuffle and self.bucket_by_length and len(batches) > 1:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _shard(self, batch: np.ndarray) -> np.ndarray:
        if self.num_shards == 1:
            return batch
        if len(batch) == self.global_batch_size:
            b = self.batch_size
            return batch[self.shard_index * b : (self.shard_index + 1) * b]
        if len(batch) < self.num_shards:  # every shard needs at least one example
            extra = np.arange(self.num_shards - len(batch)) % len(self.lengths)
            batch = np.concatenate([batch, extra])
        return np.array_split(batch, self.num_shards)[self.shard_index]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield self._shard(batch).tolist()


def _as_list(values: Any) -> list:
    return values if isinstance(values, list) else list(values)


def _is_ragged(values: Sequence[Any]) -> bool:
    first = values[0]
    if not isinstance(first, (list, tuple, np.ndarray)):
        return False
    return len({len(v) for v in values}) > 1


def sequence_fields(features: Mapping[str, Sequence[Any]]) -> tuple[str, ...]:
    """Fields with one value per token: every entry as long as its ``input_ids`` (and the
    lengths vary across the dataset). They are padded like ``input_ids`` in each batch."""
    ids = features["input_ids"]
    lengths = [len(x) for x in ids]
    if len(set(lengths)) < 2:
        return ()
    found = []
    for name, values in features.items():
        if name in TEXT_FIELDS or not isinstance(values[0], (list, tuple, np.ndarray)):
            continue
        if all(np.ndim(v) == 1 and len(v) == n for v, n in zip(values, lengths)):
            found.append(name)
    return tuple(found)


def _to_mx(array: np.ndarray) -> mx.array:
    # MLX computes in 32-bit: int64/float64 inputs (numpy's defaults) are narrowed.
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype == np.int64:
        array = array.astype(np.int32)
    elif array.dtype == np.bool_:
        pass
    return mx.array(array)


def pad_sequences(sequences: Sequence[Sequence[int]], length: int, pad_value: int) -> np.ndarray:
    """Right-pad integer sequences to ``length`` (a ``(len(sequences), length)`` int32 array)."""
    out = np.full((len(sequences), length), pad_value, dtype=np.int32)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return out


def padded_length(longest: int, pad_to_multiple_of: int | None, length_buckets=None) -> int:
    """The padded batch length for a batch whose longest sequence has ``longest`` tokens."""
    if length_buckets:
        for bucket in sorted(length_buckets):
            if bucket >= longest:
                return int(bucket)
        raise ValueError(
            f"A sequence of {longest} tokens is longer than the largest length bucket "
            f"({max(length_buckets)}): truncate when tokenizing or add a larger bucket."
        )
    if pad_to_multiple_of and pad_to_multiple_of > 1:
        return int(math.ceil(longest / pad_to_multiple_of) * pad_to_multiple_of)
    return int(longest)


def collate(
    features: Mapping[str, Sequence[Any]],
    indices: Sequence[int],
    *,
    pad_id: int = 0,
    pad_to_multiple_of: int | None = 8,
    length_buckets: Sequence[int] | None = None,
    label_pad_id: int = -100,
    token_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """One batch: text fields padded to the batch's longest (rounded), other fields stacked.

    ``input_ids`` are padded with ``pad_id``, ``token_type_ids`` with 0, and an
    ``attention_mask`` (1 = token, 0 = padding) is built unless given. Other per-example
    fields are stacked; ragged ones (e.g. per-token labels) are padded to the same length with
    ``label_pad_id`` (``labels``) or 0, and so are the ``token_fields`` (one value per token,
    see :func:`sequence_fields`). Numeric fields become ``mx.array`` (int64 -> int32,
    float64 -> float32); non-numeric fields (strings, ids) stay Python lists.
    """
    ids = [features["input_ids"][i] for i in indices]
    longest = max(len(x) for x in ids)
    length = padded_length(max(longest, 1), pad_to_multiple_of, length_buckets)
    batch: dict[str, Any] = {"input_ids": mx.array(pad_sequences(ids, length, pad_id))}
    if "attention_mask" in features:
        mask = [features["attention_mask"][i] for i in indices]
        batch["attention_mask"] = mx.array(pad_sequences(mask, length, 0))
    else:
        mask = np.zeros((len(ids), length), dtype=np.int32)
        for row, seq in enumerate(ids):
            mask[row, : len(seq)] = 1
        batch["attention_mask"] = mx.array(mask)
    if "token_type_ids" in features:
        types = [features["token_type_ids"][i] for i in indices]
        batch["token_type_ids"] = mx.array(pad_sequences(types, length, 0))
    else:
        batch["token_type_ids"] = mx.zeros((len(ids), length), dtype=mx.int32)
    for name, values in features.items():
        if name in TEXT_FIELDS:
            continue
        picked = [values[i] for i in indices]
        if name in token_fields or _is_ragged(picked):
            fill = label_pad_id if name == "labels" else 0
            batch[name] = mx.array(pad_sequences(picked, length, fill))
            continue
        array = np.asarray(picked)
        if array.dtype.kind in "biuf":
            batch[name] = _to_mx(array)
        else:
            batch[name] = picked
    return batch


class BatchIterator:
    """Re-iterable batches of a pre-tokenized dataset (see :func:`batch_iterator`).

    Each ``iter()`` is one epoch; the epoch counter advances by itself, and
    :meth:`set_epoch` chooses it explicitly (for resuming).
    """

    def __init__(
        self,
        features: Mapping[str, Sequence[Any]],
        sampler: LengthBucketSampler,
        *,
        pad_id: int = 0,
        pad_to_multiple_of: int | None = 8,
        length_buckets: Sequence[int] | None = None,
        label_pad_id: int = -100,
        return_indices: bool = False,
        token_fields: Sequence[str] | None = None,
    ):
        self.features = features
        self.token_fields = (
            sequence_fields(features) if token_fields is None else tuple(token_fields)
        )
        self.sampler = sampler
        self.pad_id = pad_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.length_buckets = length_buckets
        self.label_pad_id = label_pad_id
        self.return_indices = return_indices
        self._next_epoch = sampler.epoch

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.sampler.set_epoch(self._next_epoch)
        self._next_epoch += 1
        for indices in self.sampler:
            batch = collate(
                self.features,
                indices,
                pad_id=self.pad_id,
                pad_to_multiple_of=self.pad_to_multiple_of,
                length_buckets=self.length_buckets,
                label_pad_id=self.label_pad_id,
                token_fields=self.token_fields,
            )
            if self.return_indices:
                batch["example_index"] = mx.array(np.asarray(indices, dtype=np.int32))
            yield batch


def _validate_features(features: Mapping[str, Sequence[Any]]) -> int:
    if "input_ids" not in features:
        raise ValueError(
            f"features needs 'input_ids' (token-id lists, tokenized ahead of time); "
            f"got fields {sorted(features)}"
        )
    n = len(features["input_ids"])
    wrong = {k: len(v) for k, v in features.items() if len(v) != n}
    if wrong:
        raise ValueError(
            f"Every feature needs one entry per example ({n} input_ids); mismatched: {wrong}"
        )
    return n


def batch_iterator(
    features: Mapping[str, Sequence[Any] | np.ndarray],
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    bucket_by_length: bool = True,
    pad_id: int = 0,
    pad_to_multiple_of: int | None = 8,
    length_buckets: Sequence[int] | None = None,
    drop_last: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    mega_batch_factor: int = 50,
    label_pad_id: int = -100,
    return_indices: bool = False,
) -> BatchIterator:
    """Batches of pre-tokenized ``features`` as dicts of ``mx.array``.

    ``features["input_ids"]`` holds one token-id list per example (any lengths), optionally
    with ``token_type_ids``/``attention_mask`` alike, ``labels`` and other per-example fields.
    Each batch has ``input_ids``, ``attention_mask`` and ``token_type_ids`` of shape
    ``(batch, padded length)``, where the padded length is the batch's longest sequence
    rounded up to ``pad_to_multiple_of`` (or to the smallest of ``length_buckets`` that fits),
    plus the other fields stacked. With ``return_indices`` each batch also carries
    ``example_index`` (positions in ``features``), to put predictions back in order.

    The result is re-iterable: each ``iter()`` is one epoch with its own order
    (``seed + epoch``); ``len()`` is the number of batches per epoch for this shard.
    """
    n = _validate_features(features)
    features = {k: _as_list(v) if not isinstance(v, np.ndarray) else v for k, v in features.items()}
    lengths = np.fromiter((len(x) for x in features["input_ids"]), dtype=np.int64, count=n)
    sampler = LengthBucketSampler(
        lengths,
        batch_size,
        shuffle=shuffle,
        bucket_by_length=bucket_by_length,
        mega_batch_factor=mega_batch_factor,
        drop_last=drop_last,
        num_shards=num_shards,
        shard_index=shard_index,
        seed=seed,
    )
    return BatchIterator(
        features,
        sampler,
        pad_id=pad_id,
        pad_to_multiple_of=pad_to_multiple_of,
        length_buckets=length_buckets,
        label_pad_id=label_pad_id,
        return_indices=return_indices,
    )
