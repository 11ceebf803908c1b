"""``mlxbert embed``, ``mlxbert classify`` and ``mlxbert info``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

import mlxbert_core
from mlxbert_core import embed as core_embed
from mlxbert_core import from_pretrained, load_tokenizer
from mlxbert_glue import Classifier

from ..atomic import atomic_path
from ..errors import InputError, missing_columns_error
from ..tables import read_table
from ._common import console, handle_errors, use_device

Opt = typer.Option


@handle_errors
def embed(
    model: Annotated[str, Opt(help="Encoder: preset name, folder or hub id.")],
    output: Annotated[Path, Opt(help="Output .npy file (rows = texts).")],
    text: Annotated[list[str] | None, Opt("--text", help="A text (repeatable).")] = None,
    input: Annotated[Path | None, Opt("--input", help="Table or .txt file (one per line).")] = None,
    column: Annotated[str | None, Opt(help="Text column of --input (default: the first).")] = None,
    pooling: Annotated[str, Opt(help="mean, cls, max or pooler.")] = "mean",
    normalize: Annotated[bool, Opt(help="L2-normalise the vectors.")] = True,
    batch_size: Annotated[int, Opt("--batch-size")] = 32,
    max_length: Annotated[int | None, Opt("--max-length")] = None,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Sentence embeddings of texts (mean pooling, normalised) saved as a .npy matrix."""
    use_device(device)
    if bool(text) == (input is not None):
        raise InputError("give texts with --text T (repeatable) or a file with --input, not both")
    if text:
        texts = list(text)
    elif input is not None and input.suffix.lower() == ".txt":
        if not input.is_file():
            raise InputError(f"input file {input} does not exist")
        texts = [line for line in input.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        frame = read_table(input, what="input")
        name = column or str(frame.columns[0])
        if name not in frame.columns:
            raise missing_columns_error([name], frame.columns, str(input))
        texts = frame[name].fillna("").astype(str).tolist()
    if not texts:
        raise InputError("no texts to embed")
    if output.suffix != ".npy":
        raise InputError(f"--output must end with .npy, got {output}")
    source = model
    started = time.perf_counter()
    try:
        encoder = from_pretrained(source)
        tokenizer = load_tokenizer(source)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise InputError(f"cannot load model {model!r}: {exc}") from None
    vectors = core_embed(
        encoder,
        tokenizer,
        texts,
        pooling=pooling,
        normalize=normalize,
        batch_size=batch_size,
        max_length=max_length,
    )
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors)
    console.print(
        f"[bold green]done:[/] {vectors.shape[0]} x {vectors.shape[1]} embeddings written to "
        f"{output} ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )


@handle_errors
def classify(
    model: Annotated[Path, Opt(help="Trained model folder.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Text(s) to classify.")] = None,
    pair: Annotated[
        str | None, Opt(help="Second text of a pair (with one TEXT), e.g. for NLI.")
    ] = None,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Classify text(s) with a trained model folder; prints label and confidence."""
    use_device(device)
    if not texts:
        raise InputError("give at least one TEXT to classify")
    if pair is not None and len(texts) != 1:
        raise InputError("--pair goes with exactly one TEXT")
    try:
        clf = Classifier.from_pretrained(model)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot load model folder {model}: {exc}") from None
    items = [(texts[0], pair)] if pair is not None else list(texts)
    results = clf.classify_batch(items)
    table = Table("text", "prediction", "confidence")
    for item, result in zip(items, results):
        shown = " / ".join(item) if isinstance(item, tuple) else item
        if "value" in result:
            table.add_row(shown, f"{result['value']:.4f}", "")
        else:
            label = result["label"]
            label = ", ".join(label) if isinstance(label, list) else str(label)
            table.add_row(shown, label, f"{result['confidence']:.3f}")
    console.print(table)


@handle_errors
def info() -> None:
    """Versions, BLAS, device and threads of this installation."""
    data = mlxbert_core.runtime_info()
    table = Table("item", "value", title="mlxbert runtime")
    for name in (
        "mlxbert_core",
        "mlxbert_heads",
        "mlxbert_glue",
        "mlxbert_lora",
        "mlxbert_quant",
        "mlxbert_m2",
        "mlxbert_kaggle",
    ):
        try:
            module = __import__(name)
            table.add_row(name.replace("_", "-"), getattr(module, "__version__", "?"))
        except ImportError:
            table.add_row(name.replace("_", "-"), "not installed")
    for key, value in data.items():
        table.add_row(str(key), str(value))
    console.print(table)
