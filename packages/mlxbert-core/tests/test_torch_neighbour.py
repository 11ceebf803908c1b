"""Importing mlxbert leaves PyTorch's speed alone (skipped without torch).

A global OpenBLAS used to capture the BLAS calls of PyTorch's bundled MKL (symbol
interposition), putting OpenBLAS's thread pool against PyTorch's OpenMP threads: PyTorch
ran 1.5-2.8x slower in a process that had imported mlxbert first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

# A matrix product and the elementwise work around it, as in a transformer layer.
TIMED = """
import json, sys, time
if sys.argv[1] == "mlxbert":
    import mlxbert_core  # noqa: F401
import torch
torch.manual_seed(0)
x, w = torch.randn(1024, 384), torch.randn(384, 1536)
def step():
    return torch.nn.functional.gelu(x @ w).sum()
for _ in range(5):
    step()
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    for _ in range(10):
        step()
    best = min(best, time.perf_counter() - start)
print(json.dumps(best))
"""


def _seconds(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLXBERT_")}
    out = subprocess.run(
        [sys.executable, "-c", TIMED, mode],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def test_torch_runs_as_fast_after_importing_mlxbert():
    # Alternate the two processes and compare their best times: a shared machine's noise hits
    # both; the old slowdown was 1.5x and more.
    alone, beside = [], []
    for _ in range(3):
        alone.append(_seconds("alone"))
        beside.append(_seconds("mlxbert"))
    assert min(beside) < 1.25 * min(alone), (alone, beside)
