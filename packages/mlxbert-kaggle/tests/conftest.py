from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[2]
KAGGLE_DATA = REPO.parent / "shared" / "data" / "kaggle"


@pytest.fixture
def tiny_bert() -> str:
    """A 3-layer, 64-wide BERT with a 1,024-token vocabulary (random weights)."""
    return str(HERE / "fixtures" / "tiny-bert")


@pytest.fixture
def kaggle_data() -> Path:
    if not KAGGLE_DATA.is_dir():
        pytest.skip(f"real Kaggle files not found at {KAGGLE_DATA} (the shared data folder)")
    return KAGGLE_DATA
