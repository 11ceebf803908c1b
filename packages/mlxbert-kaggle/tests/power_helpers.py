"""Small real tables for the power-tool tests: rows of the disaster-tweets competition
(``../shared/data/kaggle``), a tiny random BERT, one epoch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlxbert_kaggle import FitConfig

HERE = Path(__file__).parent
TINY = str(HERE / "fixtures" / "tiny-bert")
#: One quick fit: the tiny BERT, one epoch, short inputs, no mx.compile.
FAST = dict(model=TINY, epochs=1, batch_size=8, max_length=24, compile=False)


def fast_config(**more) -> FitConfig:
    return FitConfig(**{**FAST, **more})


def tweets(data: Path, folder: Path, n_train: int = 32, n_test: int = 24) -> tuple[Path, Path]:
    """The first ``n_train`` labelled and ``n_test`` unlabelled tweets as CSV files."""
    root = data / "nlp-getting-started"
    train = pd.read_csv(root / "train.csv").head(n_train)
    test = pd.read_csv(root / "test.csv").head(n_test)
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


def table_args(train: Path, **more) -> dict:
    """``train_table``'s data keywords for the tweets."""
    return {"train": train, "target": "target", "text": ["text"], "id_col": "id", **more}
