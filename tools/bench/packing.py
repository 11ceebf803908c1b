"""Sentences in arrival order: packed forwards against padded ones, and sentence-transformers.

A server cannot sort its traffic by length: each forward gets the sentences that came, in
random order, so every batch is padded to its longest sentence. This measures that
workload offline, on the CPU: the 872 SST-2 dev sentences (the demo data of
mlxbert-kaggle) shuffled with a fixed seed and cut into batches of ``--batch``, each batch
one ``embed`` call, for

* ``packed``: the eager forward per core (``compile_forward(False, per_core=True)``, what
  ``mlxbert serve`` runs on a CPU), which computes each batch's real tokens only;
* ``padded``: the default compiled forward, one slice of the padded batch per core;
* ``sorted``: one ``embed`` call over all the sentences with ``batch_size`` the batch size:
  it sorts them by length (next to no padding) and uses the default forward; what offline
  ``embed`` of a whole corpus does, for reference;
* ``torch``: sentence-transformers ``encode`` of the same batches, one call per batch, in the
  interpreter given by ``--torch-python`` (skipped without it): what a user would otherwise
  run.

Sentences per second are the best of ``--rounds`` passes after a warm-up pass; CPU time per
sentence is the process's over those passes.

    python tools/bench/packing.py --torch-python /path/to/venv/bin/python --json packing.json
    python tools/bench/packing.py --batch 32 --sides packed --rounds 12   # a loop for perf
"""

from __future__ import annotations

# mlxbert_core first: on Linux it preloads OpenBLAS, which must happen before mlx.core loads.
import mlxbert_core  # isort: skip

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlxbert_core.presets import resolve_model_source

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ROOT / "packages/mlxbert-kaggle/src/mlxbert_kaggle/demo_data/sst2_dev.tsv.gz"
TORCH_SIDE = """
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
batches, model_dir, rounds = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
model = SentenceTransformer(model_dir, device="cpu")
kw = dict(batch_size=max(len(b) for b in batches), show_progress_bar=False)
for b in batches: model.encode(b, **kw)
best, cpu = 1e9, time.process_time()
for _ in range(rounds):
    start = time.perf_counter()
    for b in batches: model.encode(b, **kw)
    best = min(best, time.perf_counter() - start)
cpu = time.process_time() - cpu
n = sum(map(len, batches))
print(json.dumps({"sent_per_s": n / best, "cpu_ms_per_sentence": 1000 * cpu / (rounds * n),
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def sentences() -> list[str]:
    with gzip.open(SENTENCES, "rt", encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t")[0].strip() for line in fh][1:]
    return [r for r in rows if r]


def measure(model, tokenizer, batches: list[list[str]], rounds: int, size: int = 0) -> dict:
    """Each batch one ``embed`` call of batches of ``size`` (default: the whole batch)."""
    size = size or max(len(b) for b in batches)

    def one_pass() -> None:
        for batch in batches:
            mlxbert_core.embed(model, tokenizer, batch, batch_size=size, progress=False)

    one_pass()  # warm-up: kernels built, shapes met once
    best, cpu = float("inf"), time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - started)
    count = sum(map(len, batches))
    return {
        "sent_per_s": round(count / best, 1),
        "cpu_ms_per_sentence": round(1000 * (time.process_time() - cpu) / (rounds * count), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="all-minilm-l6-v2", help="preset name or folder")
    ap.add_argument("--batch", default="32,64", help="batch sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sides",
        default="packed,padded,sorted",
        help="which mlxbert sides to run (packed alone: a loop to profile with perf)",
    )
    ap.add_argument("--torch-python", default=None, help="an interpreter with torch and ST")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sides = set(args.sides.split(","))
    if not sides or not sides <= {"packed", "padded", "sorted"}:
        ap.error(f"--sides takes packed, padded and sorted, comma-separated; got {args.sides!r}")

    texts = sentences()
    shuffled = texts[:]
    random.Random(args.seed).shuffle(shuffled)
    tokenizer = mlxbert_core.load_tokenizer(args.model)
    model = mlxbert_core.from_pretrained(args.model)
    report: dict = {
        "runtime": mlxbert_core.runtime_info(),
        "load_before": os.getloadavg(),
        "sentences": len(texts),
        "results": {},
    }
    for size in (int(b) for b in args.batch.split(",")):
        cut = [shuffled[i : i + size] for i in range(0, len(shuffled), size)]
        row: dict = {}
        if "packed" in sides:
            model.compile_forward(False, per_core=True)
            row["packed"] = measure(model, tokenizer, cut, args.rounds)
        model.compile_forward(True)
        if "padded" in sides:
            row["padded"] = measure(model, tokenizer, cut, args.rounds)
        if "sorted" in sides:
            row["sorted"] = measure(model, tokenizer, [texts], args.rounds, size)
        if args.torch_python:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
                json.dump(cut, fh)
            model_dir, _ = resolve_model_source(args.model)
            done = subprocess.run(
                [args.torch_python, "-c", TORCH_SIDE, fh.name, model_dir, str(args.rounds)],
                capture_output=True,
                text=True,
            )
            os.unlink(fh.name)
            if done.returncode != 0:
                sys.exit(f"the sentence-transformers side failed: {done.stderr.strip()[-400:]}")
            row["torch"] = json.loads(done.stdout.strip().splitlines()[-1])
            if "packed" in row:
                row["packed_over_torch"] = round(
                    row["packed"]["sent_per_s"] / row["torch"]["sent_per_s"], 2
                )
        if "packed" in row and "padded" in row:
            row["packed_over_padded"] = round(
                row["packed"]["sent_per_s"] / row["padded"]["sent_per_s"], 2
            )
        report["results"][str(size)] = row
        print(size, json.dumps(row), flush=True)
    report["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
