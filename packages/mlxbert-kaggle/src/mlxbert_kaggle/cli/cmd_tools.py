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
from mlxbert_glue.task_model import encoder_positions

from ..atomic import atomic_path
from ..errors import InputError, missing_columns_error
from ..outputs import check_output_file
from ..tables import looks_like_text, read_table
from ._common import console, positive, use_device

Opt = typer.Option


def _read_lines(path: Path) -> list[str]:
    """One text per line, blank lines kept (as empty texts), so row i is line i."""
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; re-save it as UTF-8") from None


def _text_column(frame, column: str | None, source: Path) -> str:
    """The column to embed: ``--column``, the only column, or the only text-like one."""
    if column is not None:
        if column not in frame.columns:
            raise missing_columns_error([column], frame.columns, str(source))
        return column
    if len(frame.columns) == 1:
        return str(frame.columns[0])
    wordy = [c for c in frame.columns if looks_like_text(frame[c])]
    if len(wordy) == 1:
        message = f"embedding column {wordy[0]!r} of {source} (its only text column)"
        console.print(message, highlight=False, markup=False)
        return str(wordy[0])
    shown = ", ".join(repr(str(c)) for c in frame.columns)
    raise InputError(f"{source} has several columns ({shown}); name the one to embed with --column")


def embed(
    model: Annotated[str, Opt(help="Encoder: preset name, folder or hub id.")],
    output: Annotated[Path, Opt(help="Output .npy file (rows = texts).")],
    text: Annotated[list[str] | None, Opt("--text", help="A text (repeatable).")] = None,
    input: Annotated[
        Path | None, Opt("--input", help="Table, or .txt file with one text per line.")
    ] = None,
    column: Annotated[
        str | None, Opt(help="Text column of a table --input (needed when it has several).")
    ] = None,
    pooling: Annotated[str, Opt(help="mean, cls, max or pooler.")] = "mean",
    normalize: Annotated[bool, Opt(help="L2-normalise the vectors.")] = True,
    batch_size: Annotated[int, Opt("--batch-size")] = 32,
    max_length: Annotated[int | None, Opt("--max-length")] = None,
    overwrite: Annotated[bool, Opt(help="Replace an existing --output file.")] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Sentence embeddings of texts (mean pooling, normalised) saved as a .npy matrix."""
    positive(batch_size, "--batch-size")
    positive(max_length, "--max-length", minimum=2)
    check_output_file(output, overwrite=overwrite, suffixes=[".npy"])
    use_device(device)
    if bool(text) == (input is not None):
        raise InputError("give texts with --text T (repeatable) or a file with --input, not both")
    if text:
        texts = list(text)
    elif input is not None and input.suffix.lower() == ".txt":
        texts = _read_lines(input)
    else:
        frame = read_table(input, what="input")
        texts = frame[_text_column(frame, column, input)].fillna("").astype(str).tolist()
    if not texts:
        raise InputError("no texts to embed")
    started = time.perf_counter()
    encoder = from_pretrained(model)
    tokenizer = load_tokenizer(model)
    limit = encoder_positions(encoder)
    if max_length is not None and limit is not None and max_length > limit:
        raise InputError(f"--max-length {max_length}: {model} takes at most {limit} tokens")
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


def classify(
    model: Annotated[
        str,
        Opt(
            help="Model folder, or a Hugging Face classifier folder / hub id, or an M2-BERT "
            "checkpoint folder."
        ),
    ],
    texts: Annotated[list[str] | None, typer.Argument(help="Text(s) to classify.")] = None,
    pair: Annotated[
        str | None, Opt(help="Second text of a pair (with one TEXT), e.g. for NLI.")
    ] = None,
    task: Annotated[
        str | None, Opt(help="Names the labels of a checkpoint that has none (e.g. sst2).")
    ] = None,
    checkpoint: Annotated[
        str | None, Opt(help="Checkpoint file, when --model's folder holds several.")
    ] = None,
    tokenizer: Annotated[
        str | None, Opt(help="Tokenizer folder or hub id, when --model's folder has none.")
    ] = None,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Classify text(s) with a trained classifier; prints label and confidence."""
    use_device(device)
    if not texts:
        raise InputError("give at least one TEXT to classify")
    if pair is not None and len(texts) != 1:
        raise InputError("--pair goes with exactly one TEXT")
    clf = Classifier.from_pretrained(model, task=task, checkpoint=checkpoint, tokenizer=tokenizer)
    items = [(texts[0], pair)] if pair is not None else list(texts)
    results = clf.classify_batch(items)
    table = Table("text", "prediction", "confidence")
    for item, result in zip(items, results):
        shown = " / ".join(item) if isinstance(item, tuple) else item
        if "value" in result:
            value = result["value"]
            shown_value = (
                ", ".join(f"{v:.4f}" for v in value)
                if isinstance(value, list)
                else (f"{value:.4f}")
            )
            table.add_row(shown, shown_value, "")
        else:
            label = result["label"]
            label = ", ".join(label) if isinstance(label, list) else str(label)
            table.add_row(shown, label, f"{result['confidence']:.3f}")
    console.print(table)


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
