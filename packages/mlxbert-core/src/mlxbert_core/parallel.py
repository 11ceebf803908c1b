"""Batch-parallel inference on CPUs: one slice of the batch per core.

MLX's CPU backend runs each stream's operations on one thread, and only its matrix products
use more (OpenBLAS's threads). On a small CPU the softmax, GELU and layer norm of an encoder
therefore run on one core while the others wait. :func:`parallel_forward` instead splits the
batch into as many slices as there are cores, runs each slice's forward on its own MLX CPU
stream with OpenBLAS on one thread, and joins the outputs: every part of the forward then
runs in parallel (measured with ``tools/bench/encoder.py``; figures in docs/BENCHMARKS.md). The
encoders' default (compiled) inference call does the same through :func:`split_call`;
:func:`parallel_forward` does it for any model call. :func:`split_rows` puts rows of similar
length together in groups of equal cost instead (a packed forward's work grows with real
tokens, not rows).

The result equals the plain forward up to float rounding (matrix products of different
shapes sum in different orders). Inference only: the slices' outputs are evaluated before
returning, so it cannot run inside ``mx.compile`` or a gradient transformation.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_core import runtime
from mlxbert_core.encoder import find_encoder

__all__ = [
    "AUTO_MAX_CORES",
    "cpu_cores",
    "default_streams",
    "length_groups",
    "parallel_forward",
    "split_call",
    "split_rows",
]

# MLX streams belong to the thread that made them ("There is no Stream(cpu, N) in current
# thread" elsewhere), so each thread keeps its own streams, and its own depth: > 0 while its
# slices run, so that a model called inside does not split again.
_LOCAL = threading.local()


def _depth(change: int = 0) -> int:
    _LOCAL.depth = getattr(_LOCAL, "depth", 0) + change
    return _LOCAL.depth


def cpu_cores() -> int:
    """The CPUs this process may use (its affinity mask)."""
    return runtime._default_threads()


#: Up to this many cores, ``parallel_forward`` splits by default. It was measured on 2 cores,
#: where OpenBLAS gains little from its second thread and the one-threaded elementwise work
#: is a large share; with many cores, multi-threaded matrix products over the whole batch
#: are the better default until measured otherwise (pass ``num_streams`` to choose).
AUTO_MAX_CORES = 4


def default_streams() -> int:
    """How many slices ``parallel_forward`` makes by default: the cores this process may use
    when there are at most :data:`AUTO_MAX_CORES`, else 1 (the plain forward)."""
    cores = cpu_cores()
    return cores if cores <= AUTO_MAX_CORES else 1


def _streams(count: int) -> list[mx.Stream]:
    streams: list[mx.Stream] = _LOCAL.__dict__.setdefault("streams", [])
    while len(streams) < count:
        streams.append(mx.new_stream(mx.cpu))
    return streams[:count]


def _batch_size(inputs: dict[str, Any]) -> int:
    for value in inputs.values():
        if value is not None and hasattr(value, "shape") and len(value.shape) > 0:
            return int(value.shape[0])
    raise ValueError("parallel_forward needs at least one batched array input (input_ids)")


def _slice(value: Any, start: int, stop: int) -> Any:
    if value is None or not hasattr(value, "shape") or len(value.shape) == 0:
        return value
    return value[start:stop]


def _join(parts: list[Any]) -> Any:
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, mx.array):
        return mx.concatenate(parts, axis=0) if first.ndim > 0 else first
    if isinstance(first, tuple):
        return tuple(_join(list(items)) for items in zip(*parts))
    if isinstance(first, dict):
        return {key: _join([p[key] for p in parts]) for key in first}
    if dataclasses.is_dataclass(first):
        return dataclasses.replace(
            first,
            **{
                f.name: _join([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(first)
            },
        )
    raise TypeError(f"parallel_forward cannot join model outputs of type {type(first).__name__}")


def _arrays(tree: Any) -> list[mx.array]:
    if isinstance(tree, mx.array):
        return [tree]
    if isinstance(tree, tuple):
        return [a for item in tree for a in _arrays(item)]
    if isinstance(tree, dict):
        return [a for item in tree.values() for a in _arrays(item)]
    if dataclasses.is_dataclass(tree):
        return [a for f in dataclasses.fields(tree) for a in _arrays(getattr(tree, f.name))]
    return []


def parallel_forward(model: Any, *, num_streams: int | None = None, **inputs: Any) -> Any:
    """``model(**inputs)``, computed slice by slice on parallel CPU streams (see the module
    docstring) and returned evaluated, with the outputs joined along the batch axis.

    ``num_streams`` defaults to :func:`default_streams` (the CPUs this process may use, on
    machines with up to four), capped by the batch size.
    Falls back to the plain call (unevaluated) off the CPU, for a batch of one, or with one
    stream. Inputs may be NumPy or MLX arrays; every batched input is split the same way.
    """
    streams_wanted = num_streams if num_streams is not None else default_streams()
    if mx.default_device().type != mx.DeviceType.cpu:
        return model(**inputs)
    if num_streams is None and getattr(find_encoder(model), "packs_batches", False):
        # the encoder deals the rows to the cores itself, by real tokens rather than rows
        return model(**inputs)
    batch = _batch_size(inputs)
    count = min(streams_wanted, batch)
    if count <= 1:  # as asked: the model's own call does not split either
        _depth(+1)
        try:
            return model(**inputs)
        finally:
            _depth(-1)
    return _on_streams(
        count,
        batch,
        lambda start, stop: model(**{k: _slice(v, start, stop) for k, v in inputs.items()}),
        _join,
    )


def _on_streams(
    count: int, batch: int, call: Callable[[int, int], Any], join, bounds: Any = None
) -> Any:
    """``call(start, stop)`` for ``count`` slices of the batch (equal ones unless ``bounds``,
    the ``count + 1`` slice edges, are given), each on its own CPU stream; joined, evaluated."""
    if bounds is None:
        bounds = np.linspace(0, batch, count + 1).round().astype(int)
    previous = runtime.set_blas_threads(1)  # one core per stream (None: no OpenBLAS)
    _depth(+1)
    try:
        parts = []
        for stream, start, stop in zip(_streams(count), bounds[:-1], bounds[1:]):
            with mx.stream(stream):
                parts.append(call(int(start), int(stop)))
        mx.eval([a for part in parts for a in _arrays(part)])
    finally:
        _depth(-1)
        if previous is not None:
            runtime.set_blas_threads(previous)
    return join(parts)


def split_call(fn: Callable[..., tuple], arrays: list[mx.array]) -> tuple:
    """``fn(*arrays)`` for batch-first ``arrays`` and a function returning a tuple of
    batch-first arrays, one batch slice per core on a CPU with a few cores (as
    :func:`parallel_forward`, returned evaluated); the plain call elsewhere, for a batch of
    one, inside :func:`parallel_forward`, or inside a function transformation
    (``mx.compile``, ``vmap``), where arrays cannot be evaluated."""
    count = default_streams()
    batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
    if _depth() or count <= 1 or batch <= 1 or mx.default_device().type != mx.DeviceType.cpu:
        return fn(*arrays)
    try:
        return _on_streams(
            min(count, batch),
            batch,
            lambda start, stop: fn(*(a[start:stop] for a in arrays)),
            lambda parts: tuple(_join(list(items)) for items in zip(*parts)),
        )
    except ValueError as exc:
        if "transformation" not in str(exc) and "eval" not in str(exc):
            raise
        return fn(*arrays)


def length_groups(lengths: Any, count: int, pair_cost: float = 0.0) -> list[np.ndarray]:
    """Row indices in up to ``count`` groups of similar lengths (the longest rows in the first
    group), of near-equal cost: a group's cost is its total length plus ``pair_cost`` per
    (query, key) pair of its attention grid, ``rows * longest ** 2``. Each group in ascending
    row order; no empty groups.

    Rows of like length together keep each group's attention grid (as wide as its longest
    row) close to its real tokens; dealing long rows to every group would make every grid
    as wide as the longest row of the batch.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    order = np.argsort(-lengths, kind="stable")
    ranked = lengths[order].tolist()  # Python floats: the greedy loop runs per forward

    def cuts_for(cap: float) -> list[int]:
        # Greedy runs under ``cap`` (a run's cost only grows as shorter rows join it).
        cuts, start, total = [], 0, 0.0
        for i, length in enumerate(ranked):
            total += length
            if i > start and total + pair_cost * (i - start + 1) * ranked[start] ** 2 > cap:
                cuts.append(i)
                start, total = i, length
        return cuts

    # The smallest cap that needs at most ``count`` runs, by bisection.
    longest = ranked[0] if ranked else 0.0
    low = longest + pair_cost * longest**2
    high = sum(ranked) + pair_cost * len(ranked) * longest**2
    for _ in range(48):
        middle = (low + high) / 2
        if len(cuts_for(middle)) < count:
            high = middle
        else:
            low = middle
    runs = np.split(order, cuts_for(high))
    return [np.sort(run).astype(np.int64) for run in runs if run.size]


def split_rows(
    fn: Callable[..., tuple],
    arrays: list[mx.array | np.ndarray | None],
    lengths: Any,
    pair_cost: float = 0.0,
) -> tuple:
    """``fn(*arrays)`` for batch-first ``arrays`` (MLX or NumPy; None entries passed
    through) and a function returning a tuple of batch-first arrays, with the rows in one
    group per core of similar ``lengths`` (real tokens per row) and near-equal cost
    (:func:`length_groups`) rather than cut into equal slices: for work that grows with the
    real tokens, not the row count. Outputs come back in the input's row order, evaluated.
    The plain call where :func:`split_call` makes one."""
    count = default_streams()
    batch = len(lengths)
    if _depth() or count <= 1 or batch <= 1 or mx.default_device().type != mx.DeviceType.cpu:
        return fn(*arrays)
    groups = length_groups(lengths, min(count, batch), pair_cost)
    order = np.concatenate(groups)
    grouped = [
        None if a is None else a[order if isinstance(a, np.ndarray) else mx.array(order)]
        for a in arrays
    ]
    bounds = np.concatenate([[0], np.cumsum([len(g) for g in groups])])
    joined = _on_streams(
        len(groups),
        batch,
        lambda start, stop: fn(*(None if a is None else a[start:stop] for a in grouped)),
        lambda parts: tuple(_join(list(items)) for items in zip(*parts)),
        bounds,
    )
    back = mx.array(np.argsort(order).astype(np.int32))
    return tuple(out[back] for out in joined)
