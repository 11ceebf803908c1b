"""``mlxbert demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..demo import DemoConfig, run_demo
from ..progress import RichReporter
from ._common import console, use_device

Opt = typer.Option
_D = DemoConfig()


def demo(
    output: Annotated[Path, Opt(help="Where the trained model folder goes.")] = Path(
        "mlxbert-demo"
    ),
    train_rows: Annotated[int, Opt("--train-rows", help="SST-2 sentences to train on.")] = (
        _D.train_rows
    ),
    epochs: Annotated[int, Opt()] = _D.epochs,
    batch_size: Annotated[int, Opt("--batch-size")] = _D.batch_size,
    max_length: Annotated[int, Opt("--max-length")] = _D.max_length,
    lr: Annotated[float, Opt()] = _D.lr,
    lora: Annotated[str, Opt(help="LoRA preset.")] = _D.lora,
    model: Annotated[str, Opt(help="Encoder to fine-tune.")] = _D.model,
    pooling: Annotated[str, Opt(help="mean (the sentence encoder's) or cls.")] = _D.pooling,
    seed: Annotated[int, Opt()] = _D.seed,
    overwrite: Annotated[bool, Opt(help="Replace what --output holds.")] = False,
    device: Annotated[str | None, Opt(help="cpu or gpu.")] = None,
) -> None:
    """Fine-tune all-MiniLM-L6-v2 with LoRA on SST-2 sentiment, evaluate, save, predict."""
    use_device(device)
    config = DemoConfig(
        model=model,
        train_rows=train_rows,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        lora=lora,
        seed=seed,
        pooling=pooling,
    )
    result = run_demo(output, config, reporter=RichReporter(), overwrite=overwrite)
    table = Table("sentence", "prediction", "confidence", title="the saved model on new text")
    for ex in result["examples"]:
        table.add_row(ex["text"], ex["label"], f"{ex['confidence']:.3f}")
    console.print(table)
    console.print(
        f"[bold green]done:[/] SST-2 dev accuracy {result['accuracy']:.4f} "
        f"({result['dev_rows']} sentences) after training on {result['train_rows']} in "
        f"{result['train_seconds']:.0f} s; {result['seconds']:.0f} s in all; model saved to "
        f'{result["output"]} (try: mlxbert classify --model {result["output"]} "great film")',
        highlight=False,
    )
