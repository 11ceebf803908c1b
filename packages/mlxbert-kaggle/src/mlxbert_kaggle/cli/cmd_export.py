"""``mlxbert export``: a model to ONNX, an MLX function file or a Hugging Face folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlxbert_glue import ExportError, export_model

from ..errors import InputError
from ._common import console

Opt = typer.Option


def export(
    model: Annotated[
        str, Opt(help="Trained model folder, classifier folder, encoder preset, folder or hub id.")
    ],
    format: Annotated[str, Opt("--format", help="onnx, mlxfn or hf.")],
    output: Annotated[Path, Opt(help="Output folder (refused if it exists, see --overwrite).")],
    dtype: Annotated[str, Opt(help="float32 or float16 weights.")] = "float32",
    opset: Annotated[int | None, Opt(help="ONNX opset (default 20).")] = None,
    max_length: Annotated[
        int | None, Opt("--max-length", help="Longest input the graph takes.")
    ] = None,
    pooling: Annotated[
        str | None,
        Opt(help="Encoders: also output sentence_embedding (mean, cls, max or pooler)."),
    ] = None,
    normalize: Annotated[bool, Opt(help="L2-normalise sentence_embedding.")] = True,
    quantize: Annotated[
        bool, Opt("--quantize-int8", help="Also write model_quantized.onnx (int8 weights).")
    ] = False,
    encoder_only: Annotated[
        bool, Opt("--encoder-only", help="Export a classifier's encoder without its head.")
    ] = False,
    overwrite: Annotated[bool, Opt(help="Replace an existing output folder.")] = False,
) -> None:
    """Export a model for deployment: ONNX, an MLX function file or the transformers folder.

    ONNX runs in onnxruntime (and anything else that reads ONNX); .mlxfn loads with MLX's
    mx.import_function in Python or C++; hf is the folder transformers and optimum read.
    ONNX and .mlxfn exports are checked against MLX before they are kept."""
    try:
        result = export_model(
            model,
            format,
            output,
            dtype=dtype,
            opset=opset,
            max_length=max_length,
            pooling=pooling,
            normalize=normalize,
            quantize=quantize,
            encoder_only=encoder_only,
            overwrite=overwrite,
        )
    except (ExportError, ImportError) as exc:
        raise InputError(str(exc)) from None
    check = ""
    if result.max_abs_diff is not None:
        check = f"; max |Δ| vs MLX on the check batch {result.max_abs_diff:.2e}"
    if result.quantized_max_abs_diff is not None:
        check += (
            f" (int8 copy: max |Δ| {result.quantized_max_abs_diff:.2e}, lowest row cosine "
            f"{result.quantized_min_cosine:.4f})"
        )
    console.print(
        f"[bold green]done:[/] {format} export written to {result.path} "
        f"({', '.join(result.files)}){check}",
        highlight=False,
    )
