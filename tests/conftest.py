"""Integration tests span packages; import mlxbert_core first so its OpenBLAS preload runs
before anything imports mlx.core (otherwise MLX binds the slow reference BLAS)."""

import json
import shutil
from pathlib import Path

import pytest

import mlxbert_core  # noqa: F401  (import for its side effect)

REPO = Path(__file__).resolve().parents[1]
M2_FIXTURES = REPO / "packages" / "mlxbert-m2" / "tests" / "fixtures"
TINY_BERT = REPO / "packages" / "mlxbert-glue" / "tests" / "fixtures" / "tiny-bert"


def _m2_folder(root: Path, name: str, checkpoint: str) -> Path:
    """An M2-BERT fixture's config and one checkpoint, with a WordPiece tokenizer cut to the
    model's vocabulary (the tiny BERT's, whose special ids are bert-base-uncased's)."""
    folder = root / name
    folder.mkdir()
    shutil.copyfile(M2_FIXTURES / name / "config.json", folder / "config.json")
    shutil.copyfile(M2_FIXTURES / name / checkpoint, folder / checkpoint)
    vocab_size = json.loads((folder / "config.json").read_text())["vocab_size"]
    tok = json.loads((TINY_BERT / "tokenizer.json").read_text())
    tok["model"]["vocab"] = {k: v for k, v in tok["model"]["vocab"].items() if v < vocab_size}
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    for extra in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(TINY_BERT / extra, folder / extra)
    return folder


@pytest.fixture
def m2_folder():
    """``m2_folder(root, fixture name, checkpoint file) -> folder`` (see ``_m2_folder``)."""
    return _m2_folder
