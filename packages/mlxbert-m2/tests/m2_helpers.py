"""Test helpers for mlxbert-m2: fixture locations and the parity assertion."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
# Full fixture set (with the larger pytorch_model.bin / model.safetensors files) next to the repo.
SHARED = HERE.parents[2] / ".." / "shared" / "fixtures" / "m2"
CONFIGS = ("glue_tiny", "retrieval_tiny", "switches_tiny")

# Suggested fp32 tolerances of the fixture README.
HIDDEN_TOL = {"atol": 1e-4, "rtol": 1e-4}
POOLED_TOL = {"atol": 2e-5, "rtol": 0}
KERNEL_TOL = {"atol": 1e-5, "rtol": 0}


def has_torch_free_unpickler() -> bool:
    try:
        from mlxbert_core import load_torch_checkpoint  # noqa: F401
    except ImportError:
        return False
    return True


def fixture_file(name: str, filename: str) -> Path:
    """A fixture file from the repo copy, else the shared set; skip when neither has it."""
    for root in (FIXTURES, SHARED):
        path = root / name / filename
        if path.is_file():
            if path.suffix in (".pt", ".bin") and not has_torch_free_unpickler():
                pytest.skip(f"{filename} needs mlxbert_core.load_torch_checkpoint (not available)")
            return path
    pytest.skip(
        f"{name}/{filename} is not in the repo fixtures and the shared M2 fixture folder "
        f"({SHARED.resolve()}) is absent"
    )


def config_dict(name: str, **overrides) -> dict:
    with open(FIXTURES / name / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    config.update(overrides)
    return config


def io_arrays(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / name / "io.npz") as data:
        return {k: data[k] for k in data.files}


def inputs(io: dict[str, np.ndarray], prefix: str = "") -> tuple[mx.array, mx.array, mx.array]:
    return tuple(
        mx.array(io[f"{prefix}{k}"]) for k in ("input_ids", "attention_mask", "token_type_ids")
    )


def assert_close(actual: mx.array, expected: np.ndarray, tol: dict, what: str) -> None:
    actual = np.array(actual.astype(mx.float32))
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **tol)


def assert_central_differences(loss64, args, grads, probes, eps: float = 1e-3) -> None:
    """Check the gradients ``grads`` of a loss of ``args`` (numpy arrays) against central
    differences of its float64 version ``loss64`` at ``probes``: (argument number, index)
    pairs. Exact up to rounding for a loss bilinear in its arguments."""
    for which, idx in probes:
        plus, minus = list(args), list(args)
        plus[which], minus[which] = args[which].copy(), args[which].copy()
        plus[which][idx] += eps
        minus[which][idx] -= eps
        fd = (loss64(*plus) - loss64(*minus)) / (2 * eps)
        got = float(grads[which][idx])
        assert abs(got - fd) < 1e-4 * max(1.0, abs(fd)), (idx, got, fd)
