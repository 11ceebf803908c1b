"""Makes the helper module importable (tests run with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mlxbert_core  # noqa: F401  (first: it sets up the fast BLAS before mlx loads)

sys.path.insert(0, str(Path(__file__).parent))

from m2_helpers import CONFIGS


@pytest.fixture(params=CONFIGS)
def name(request) -> str:
    return request.param
