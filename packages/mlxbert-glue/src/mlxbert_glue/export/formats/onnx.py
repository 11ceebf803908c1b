"""``onnx``: a graph written from the MLX weights with the ``onnx`` package (no torch), run
and checked with onnxruntime; optionally an int8 dynamically quantized copy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, missing_onnx
from ..graph import GraphPlan, GraphSpec, write_graph
from ..ops import GraphInputs
from ..source import ExportSubject

MODEL_FILE = "model.onnx"
QUANTIZED_FILE = "model_quantized.onnx"
#: The opset written by default; LayerNormalization needs at least 17.
DEFAULT_OPSET = 20
#: Protobuf's limit on one file; larger models keep their weights in a side file.
_SINGLE_FILE_LIMIT = 1_900_000_000


def _modules():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise missing_onnx() from None
    return onnx, onnxruntime


def require_onnx() -> None:
    """Raise the install hint now when the ``onnx`` extra is missing."""
    _modules()


def opset_range() -> tuple[int, int]:
    """(oldest, newest) opset an export can be written for."""
    onnx, _ = _modules()
    from ..onnx_ops import MIN_OPSET

    return MIN_OPSET, int(onnx.defs.onnx_opset_version())


def check_opset(opset: int | None) -> int:
    lo, hi = opset_range()
    value = DEFAULT_OPSET if opset is None else int(opset)
    if not lo <= value <= hi:
        raise ExportError(f"opset {value} is not available: use {lo} to {hi}")
    return value


def build_model(
    subject: ExportSubject,
    plan: GraphPlan,
    spec: GraphSpec,
    *,
    dtype: str,
    opset: int,
    max_positions: int,
    metadata: dict[str, str],
) -> Any:
    """The ``onnx.ModelProto``."""
    _modules()
    import mlxbert_glue

    from ..onnx_ops import OnnxOps

    ops = OnnxOps(dtype=dtype, opset=opset, max_positions=max_positions)
    tensors = {name: ops.input(name) for name in plan.inputs}
    outputs = write_graph(subject, plan, spec, ops, GraphInputs(**tensors))
    return ops.model(
        list(plan.inputs),
        [(name, t, list(dims)) for (name, dims), t in zip(plan.outputs, outputs)],
        metadata=metadata,
        producer="mlxbert",
        version=mlxbert_glue.__version__,
    )


def save_model(model: Any, path: Path) -> None:
    onnx, _ = _modules()
    large = model.ByteSize() > _SINGLE_FILE_LIMIT
    if not large:
        onnx.checker.check_model(model)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
    )
    if large:
        onnx.checker.check_model(str(path))


def session(path: Path) -> Any:
    """An onnxruntime CPU session on ``path``."""
    _, ort = _modules()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path_or_session: Any, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = path_or_session if hasattr(path_or_session, "run") else session(path_or_session)
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: np.asarray(batch[n], dtype=np.int64) for n in names})


def quantize_int8(source: Path, target: Path) -> None:
    """onnxruntime's dynamic quantization: int8 weights of the matrix products (one scale
    per output channel), activations quantized at run time."""
    _modules()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the tool logs advice on pre-processing for every call
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


__all__ = [
    "DEFAULT_OPSET",
    "MODEL_FILE",
    "QUANTIZED_FILE",
    "build_model",
    "check_opset",
    "opset_range",
    "quantize_int8",
    "require_onnx",
    "run",
    "save_model",
    "session",
]
