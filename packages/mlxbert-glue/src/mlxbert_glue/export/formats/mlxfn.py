"""``mlxfn``: the forward pass as an MLX function file (``mx.export_function``), traced
shapeless, so one file serves every batch size and length; load it with
``mx.import_function`` in Python or ``mlx::core::import_function`` in C++.

The traced function is written by the same graph writers as the ONNX graph, with the MLX
backend (:mod:`..mlx_ops`): the encoders' own forwards read shapes in Python (positions,
head splits, the local-attention regime) and so cannot be traced shapeless.
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np

from ..graph import GraphPlan, GraphSpec, write_graph
from ..mlx_ops import MlxOps
from ..ops import GraphInputs
from ..source import ExportSubject

MODEL_FILE = "model.mlxfn"


def build_function(
    subject: ExportSubject, plan: GraphPlan, spec: GraphSpec, *, dtype: str, max_positions: int
):
    """``fn(*inputs) -> outputs`` (inputs in ``plan.inputs`` order, outputs float32)."""
    ops = MlxOps(dtype=dtype, max_positions=max_positions)

    def forward(*arrays: mx.array) -> tuple[mx.array, ...]:
        inputs = GraphInputs(**dict(zip(plan.inputs, arrays)))
        outputs = write_graph(subject, plan, spec, ops, inputs)
        return tuple(o.astype(mx.float32) for o in outputs)

    return forward


def export_function(
    subject: ExportSubject,
    plan: GraphPlan,
    spec: GraphSpec,
    path: Path,
    example: dict[str, np.ndarray],
    *,
    dtype: str,
    max_positions: int,
) -> None:
    fn = build_function(subject, plan, spec, dtype=dtype, max_positions=max_positions)
    args = [mx.array(np.asarray(example[name], dtype=np.int32)) for name in plan.inputs]
    mx.export_function(str(path), fn, *args, shapeless=True)


def run(path_or_function, batch: dict[str, np.ndarray], inputs: tuple[str, ...]):
    """Outputs (NumPy) of an exported function file, or of a function ``mx.import_function``
    returned, for a batch of int inputs."""
    fn = path_or_function
    if not callable(fn):
        fn = mx.import_function(str(path_or_function))
    args = [mx.array(np.asarray(batch[name], dtype=np.int32)) for name in inputs]
    return [np.array(o) for o in fn(*args)]


__all__ = ["MODEL_FILE", "build_function", "export_function", "run"]
