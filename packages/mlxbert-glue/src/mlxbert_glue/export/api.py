"""``export_model``: a task model or encoder to ONNX, an MLX function file, or a Hugging
Face folder. Inputs and the output path are checked before any long work; the output is
written to a temporary folder and renamed into place, so a failed export leaves nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError
from .files import check_output, output_folder, write_tokenizer
from .formats import hf as hf_format
from .formats import mlxfn as mlxfn_format
from .graph import GraphSpec, plan_graph
from .metadata import EXPORT_FILE, describe, onnx_properties
from .ops import DTYPES
from .reference import check_batch, max_difference, min_cosine, mlx_outputs
from .source import ExportSubject, open_subject

FORMATS = ("onnx", "mlxfn", "hf")

#: Largest |Δ| against MLX accepted by the check every export runs (float32); the tests
#: hold the graphs to 1e-4. float16 graphs are compared relative to the output scale.
TOLERANCE = {"float32": 1e-3, "float16": 2e-2}


@dataclass
class ExportResult:
    """path: the written folder; files: its contents; max_abs_diff: the largest
    difference from MLX on the check batch (None for ``hf``); quantized_max_abs_diff: the
    same for the int8 copy, and quantized_min_cosine the lowest cosine similarity between
    the rows of its last output (logits, or the sentence embedding) and MLX's (int8 weights move values, not directions); description: what ``export.json`` holds."""

    path: Path
    format: str
    files: list[str]
    max_abs_diff: float | None = None
    quantized_max_abs_diff: float | None = None
    quantized_min_cosine: float | None = None
    description: dict[str, Any] = field(default_factory=dict)


def _check_arguments(fmt: str, dtype: str, max_length: int | None, quantize: bool) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; use {' or '.join(DTYPES)}")
    if max_length is not None and int(max_length) < 1:
        raise ExportError(f"max_length must be positive, got {max_length}")
    if quantize and fmt != "onnx":
        raise ExportError("int8 quantization (quantize) applies to the onnx format only")


def _tolerance(dtype: str, reference: list[np.ndarray]) -> float:
    scale = max(1.0, max(float(np.max(np.abs(r))) for r in reference))
    return TOLERANCE[dtype] * (scale if dtype == "float16" else 1.0)


def _checked(what: str, got: list[np.ndarray], want: list[np.ndarray], dtype: str) -> float:
    diff = max_difference(got, want)
    limit = _tolerance(dtype, want)
    if not diff <= limit:
        raise ExportError(
            f"the exported {what} disagrees with MLX by {diff:.3g} on the check batch "
            f"(tolerance {limit:.3g}); nothing was written. Please report this model."
        )
    return diff


def export_model(
    model: Any,
    format: str,
    output: str | Path,
    *,
    dtype: str = "float32",
    opset: int | None = None,
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool = True,
    quantize: bool = False,
    encoder_only: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Export ``model`` to ``output`` (a folder) in ``format``.

    Args:
        model: anything ``Classifier.from_pretrained`` opens (a task-model folder: the graph
            outputs the head's ``logits``; labels, thresholds and the head's settings go
            into the metadata), any encoder ``mlxbert_core.from_pretrained`` opens (preset,
            folder, hub id: the graph outputs ``last_hidden_state``), or a ``Classifier``.
        format: ``onnx`` (``model.onnx``, checked with onnxruntime; needs
            ``mlxbert-glue[onnx]``), ``mlxfn`` (``model.mlxfn``, ``mx.export_function``
            traced shapeless) or ``hf`` (the transformers folder).
        dtype: ``float32`` or ``float16`` weights (and compute, with float32 softmax and
            normalisation statistics); graph outputs are float32 either way.
        opset: ONNX opset (default :data:`~.formats.onnx.DEFAULT_OPSET`).
        max_length: the longest input the graph takes (default: the model's maximum);
            shrinks the position tables.
        pooling: for an encoder, also output ``sentence_embedding`` (``mean``, ``cls``,
            ``max``, ``pooler``), L2-normalised unless ``normalize`` is False.
        quantize: also write ``model_quantized.onnx``, int8 weights through onnxruntime's
            dynamic quantization.
        encoder_only: export a classifier's encoder without its head.
        overwrite: replace an existing output folder (otherwise it is refused).

    Every ``onnx`` and ``mlxfn`` export is run on a small padded batch and compared with
    the MLX model before it is kept.
    """
    _check_arguments(format, dtype, max_length, quantize)
    if format == "hf" and (pooling is not None or max_length is not None):
        raise ExportError("pooling and max_length apply to the onnx and mlxfn formats")
    out_path = check_output(output, overwrite)
    onnx_format = None
    if format == "onnx":
        from .formats import onnx as onnx_format

        onnx_format.require_onnx()
        opset = onnx_format.check_opset(opset)
    elif opset is not None:
        raise ExportError("opset applies to the onnx format only")
    spec = GraphSpec(pooling=pooling, normalize=normalize)
    subject = open_subject(
        model, dtype=dtype if format == "hf" else None, encoder_only=encoder_only
    )
    if format == "hf":
        hf_format.check_hf(subject)
        with output_folder(out_path) as tmp:
            files = hf_format.write_hf(subject, tmp)
        return ExportResult(out_path, format, files)

    plan = plan_graph(subject, spec, format)
    positions = plan.max_positions
    if max_length is not None:
        if int(max_length) > positions:
            raise ExportError(f"max_length {max_length} exceeds the model's {positions} positions")
        positions = int(max_length)
    description = describe(subject, plan, spec, fmt=format, dtype=dtype, max_length=positions)
    batch = check_batch(subject, plan, positions)
    want = mlx_outputs(subject, plan, spec, batch)
    result = ExportResult(out_path, format, [], description=description)
    with output_folder(out_path) as tmp:
        if format == "onnx":
            _write_onnx(onnx_format, subject, plan, spec, tmp, batch, want, result,
                        dtype=dtype, opset=opset, positions=positions, quantize=quantize)  # fmt: skip
        else:
            path = tmp / mlxfn_format.MODEL_FILE
            mlxfn_format.export_function(
                subject, plan, spec, path, batch, dtype=dtype, max_positions=positions
            )
            got = mlxfn_format.run(path, batch, plan.inputs)
            result.max_abs_diff = _checked("function", got, want, dtype)
        description["check"] = {
            "max_abs_diff": result.max_abs_diff,
            "quantized_max_abs_diff": result.quantized_max_abs_diff,
            "quantized_min_cosine": result.quantized_min_cosine,
        }
        source = (subject.info.source_dir if subject.info else None) or getattr(
            subject.encoder, "name_or_path", None
        )
        write_tokenizer(subject.tokenizer, source, tmp)
        (tmp / EXPORT_FILE).write_text(json.dumps(description, indent=2) + "\n", "utf-8")
        result.files = sorted(p.name for p in tmp.iterdir())
    return result


def _write_onnx(
    onnx_format: Any,
    subject: ExportSubject,
    plan: Any,
    spec: GraphSpec,
    tmp: Path,
    batch: dict[str, np.ndarray],
    want: list[np.ndarray],
    result: ExportResult,
    *,
    dtype: str,
    opset: int,
    positions: int,
    quantize: bool,
) -> None:
    model = onnx_format.build_model(
        subject, plan, spec, dtype=dtype, opset=opset, max_positions=positions,
        metadata=onnx_properties(result.description),
    )  # fmt: skip
    path = tmp / onnx_format.MODEL_FILE
    onnx_format.save_model(model, path)
    del model
    try:
        got = onnx_format.run(path, batch)
    except Exception as exc:  # onnxruntime raises its own types (older versions: opsets)
        raise ExportError(
            f"onnxruntime could not run the exported graph (opset {opset}): {exc}"
        ) from None
    result.max_abs_diff = _checked("ONNX graph", got, want, dtype)
    if quantize:
        quantized = tmp / onnx_format.QUANTIZED_FILE
        onnx_format.quantize_int8(path, quantized)
        got = onnx_format.run(quantized, batch)
        result.quantized_max_abs_diff = max_difference(got, want)
        result.quantized_min_cosine = min_cosine(got[-1:], want[-1:])


__all__ = ["FORMATS", "TOLERANCE", "ExportResult", "export_model"]
