"""Shared test helpers: where the real GLUE files are, and the tiny BERT fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
GLUE_DIR = REPO_ROOT.parent / "shared" / "data" / "glue"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_BERT = FIXTURES / "tiny-bert"


@pytest.fixture
def glue_dir() -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(
            f"the real GLUE files are not present at {GLUE_DIR} "
            "(they live next to the repository, in shared/data/glue)"
        )
    return GLUE_DIR
