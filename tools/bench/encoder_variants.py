"""Which inference options make mlxbert's BERT fast on a GPU: every variant in one process.

For each model (bert-base, minilm), dtype and batch x length cell, times in alternation:

* ``eager`` / ``compiled``: the default forward, and the ``compile_forward()`` path;
* ``+sepqkv``: three q/k/v projections instead of one fused GEMM (``GPU_FUSED_QKV=False``);
* ``+numpy``: NumPy inputs (range checks on the host) instead of MLX arrays (one device
  reduction and synchronisation per call);
* ``+nocheck``: the traced body called directly, without any input check (the cost floor);
* ``+hostcheck``: MLX-array inputs copied to the host and checked in NumPy
  (``DEVICE_INPUT_CHECK="host"``) instead of a device reduction;
* ``+trust``: ``compile_forward(check_mx_inputs=False)``: shapes checked, id values not;
* ``+splitbias``: matmul, then the bias as an elementwise add (fusable) instead of addmm;
* ``+explicit``: softmax(q kᵀ) v instead of ``mx.fast.scaled_dot_product_attention``;
* ``pad+bool`` / ``pad+additive`` / ``pad+explicit``: a batch with padding (one row one token
  short), so the mask cannot be dropped: boolean mask, float mask, explicit attention;
* ``torch`` / ``torch pad``: transformers' ``BertModel`` (SDPA) on the same inputs.

With ``--components`` it also times the pieces of one layer of the first ``--models`` entry,
12 times over (the four GEMMs, attention, layer norm, GELU, each as the encoders compute it on
that device), in MLX and PyTorch, to show where a gap comes from; ``--components-only`` skips
the whole-model variants (on a CPU they take long).

    python tools/bench/encoder_variants.py --json variants.json
    python tools/bench/encoder_variants.py --device cpu --models minilm --grid 2x16 --smoke
    python tools/bench/encoder_variants.py --device cpu --models minilm --grid 32x128 \
        --dtypes float32 --components-only

Needs only mlxbert-core importable; torch + transformers for the reference rows.
"""

from __future__ import annotations

# mlxbert_core before mlx.core: it preloads OpenBLAS on Linux (see encoder.py).
import mlxbert_core  # noqa: F401  isort: skip

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder import (
    MODELS,
    VOCAB,
    bert_config,
    environment,
    parse_grid,
    time_steps,
    torch_available,
    torch_runner,
)

from mlxbert_core.models import _layers
from mlxbert_core.models.bert import BertModel, BertModelArgs

DEFAULT_KNOBS = {
    "GPU_ATTENTION": _layers.GPU_ATTENTION,
    "GPU_ADDITIVE_MASK": _layers.GPU_ADDITIVE_MASK,
    "GPU_FUSED_QKV": _layers.GPU_FUSED_QKV,
    "GPU_SPLIT_BIAS": _layers.GPU_SPLIT_BIAS,
    "DEVICE_INPUT_CHECK": _layers.DEVICE_INPUT_CHECK,
}

# name -> (compiled, input kind: mx | numpy | nocheck, padded batch, knob overrides)
VARIANTS: dict[str, tuple[bool, str, bool, dict[str, Any]]] = {
    "eager": (False, "mx", False, {}),
    "eager+sepqkv": (False, "mx", False, {"GPU_FUSED_QKV": False}),
    "eager+numpy": (False, "numpy", False, {}),
    "eager+nocheck": (False, "nocheck", False, {}),
    "compiled": (True, "mx", False, {}),
    "compiled+sepqkv": (True, "mx", False, {"GPU_FUSED_QKV": False}),
    "compiled+numpy": (True, "numpy", False, {}),
    "compiled+hostcheck": (True, "mx", False, {"DEVICE_INPUT_CHECK": "host"}),
    "compiled+trust": (True, "trust", False, {}),
    "eager+hostcheck": (False, "mx", False, {"DEVICE_INPUT_CHECK": "host"}),
    "pad+bool+hostcheck": (
        True,
        "mx",
        True,
        {"DEVICE_INPUT_CHECK": "host", "GPU_ADDITIVE_MASK": False},
    ),
    "compiled+nocheck": (True, "nocheck", False, {}),
    "compiled+explicit": (True, "mx", False, {"GPU_ATTENTION": "explicit"}),
    "compiled+splitbias": (True, "mx", False, {"GPU_SPLIT_BIAS": True}),
    "compiled+splitbias+sepqkv": (
        True,
        "mx",
        False,
        {"GPU_SPLIT_BIAS": True, "GPU_FUSED_QKV": False},
    ),
    "eager+splitbias": (False, "mx", False, {"GPU_SPLIT_BIAS": True}),
    "pad+bool": (True, "mx", True, {"GPU_ADDITIVE_MASK": False}),
    "pad+additive": (True, "mx", True, {"GPU_ADDITIVE_MASK": True}),
    "pad+additive+hostcheck": (
        True,
        "mx",
        True,
        {"GPU_ADDITIVE_MASK": True, "DEVICE_INPUT_CHECK": "host"},
    ),
    "pad+explicit": (True, "mx", True, {"GPU_ATTENTION": "explicit"}),
    "eager pad+bool": (False, "mx", True, {}),
}


def set_knobs(overrides: dict[str, Any]) -> None:
    for name, value in {**DEFAULT_KNOBS, **overrides}.items():
        setattr(_layers, name, value)


def mlx_step(model: BertModel, spec, ids: np.ndarray, mask: np.ndarray):
    compiled, kind, _, knobs = spec
    ids_mx, mask_mx = mx.array(ids), mx.array(mask)
    mx.eval(ids_mx, mask_mx)
    # Each compiled variant keeps its own mx.compile cache: knobs are read while tracing.
    cache: dict = {}

    def step() -> None:
        set_knobs(knobs)
        model.compile_forward(compiled, check_mx_inputs=kind != "trust")
        model.__dict__["_compiled_cache"] = cache
        if kind == "nocheck":
            padded = not bool(mask.all())
            m = mask_mx if padded else None
            if compiled:
                out = model._compiled_call(model._plain_forward, ids_mx, m, None)[0]
            else:
                out = model._plain_forward(ids_mx, m, None)[0]
        elif kind == "numpy":
            out = model(ids, mask).last_hidden_state
        else:
            out = model(ids_mx, mask_mx).last_hidden_state
        mx.eval(out)

    return step


def run_cells(args, torch_reason: str | None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
    for name in args.models:
        config = bert_config(name)
        for dtype in args.dtypes:
            model = BertModel(BertModelArgs.from_dict(config))
            model.eval()
            model.set_dtype(getattr(mx, dtype))
            mx.eval(model.parameters())
            torch_make = None if torch_reason else torch_runner(config, dtype, args.device)
            for batch, length in args.grid:
                ids = rng.integers(1, VOCAB, size=(batch, length), dtype=np.int64)
                full = np.ones((batch, length), dtype=np.int64)
                padded = full.copy()
                padded[-1, -1] = 0
                steps = {
                    v: mlx_step(model, spec, ids, padded if spec[2] else full)
                    for v, spec in variants.items()
                }
                if torch_make is not None:
                    steps["torch"] = torch_make(ids, full)
                    steps["torch pad"] = torch_make(ids, padded)
                seconds = time_steps(steps, args.warmup, args.iters, args.min_seconds)
                set_knobs({})
                ref = seconds.get("torch")
                print(f"\n{name} {dtype} {batch}x{length}", flush=True)
                for v, s in seconds.items():
                    ratio = f"{ref / s:6.2f}x torch" if ref else ""
                    print(f"  {v:<20} {batch / s:10.1f} seq/s  {s * 1e3:8.2f} ms  {ratio}")
                    rows.append(
                        {
                            "model": name,
                            "dtype": dtype,
                            "batch": batch,
                            "length": length,
                            "variant": v,
                            "seconds": s,
                            "seq_per_s": batch / s,
                            "vs_torch": (ref / s) if ref else None,
                        }
                    )
    return rows


# --------------------------------------------------------------------------------------------
# Components of one bert-base layer, x12
# --------------------------------------------------------------------------------------------


def component_dims(model: str) -> tuple[int, int, int]:
    """(hidden, heads, intermediate) of a model in ``MODELS`` (intermediate = 4 x hidden)."""
    spec = MODELS[model]
    return spec["hidden_size"], spec["num_attention_heads"], 4 * spec["hidden_size"]


def component_steps_mlx(batch: int, length: int, dtype: str, reps: int, model: str):
    dt = getattr(mx, dtype)
    h, heads, inter = component_dims(model)
    m = batch * length
    x = mx.random.normal((m, h)).astype(dt)
    xi = mx.random.normal((m, inter)).astype(dt)
    w = {
        n: (mx.random.normal((o, i)) * 0.02).astype(dt)
        for n, (o, i) in {
            "qkv": (3 * h, h),
            "out": (h, h),
            "ffn1": (inter, h),
            "ffn2": (h, inter),
        }.items()
    }
    b = {n: mx.zeros((v.shape[0],), dt) for n, v in w.items()}
    q = mx.random.normal((batch, heads, length, h // heads)).astype(dt)
    g, beta = mx.ones((h,), dt), mx.zeros((h,), dt)
    mx.eval(x, xi, q, w, b)
    scale = (h // heads) ** -0.5

    def gemm(name, inp):
        return lambda: mx.eval([mx.addmm(b[name], inp, w[name].T) for _ in range(reps)])

    return {
        "gemm qkv": gemm("qkv", x),
        "gemm out": gemm("out", x),
        "gemm ffn1": gemm("ffn1", x),
        "gemm ffn2": gemm("ffn2", xi),
        # The encoders' own paths: the fused kernel on GPU, two products and a compiled
        # softmax on CPU; GELU as nn.gelu on GPU, the compiled CPU kernel of
        # mlxbert_core.models._cpu_math on CPU.
        "sdpa": lambda: mx.eval(
            [_layers.attention(q, q, q, scale=scale, mask=None)[0] for _ in range(reps)]
        ),
        "layer_norm": lambda: mx.eval([mx.fast.layer_norm(x, g, beta, 1e-12) for _ in range(reps)]),
        "gelu": lambda: mx.eval([_layers.gelu(xi) for _ in range(reps)]),
    }


def component_steps_torch(batch: int, length: int, dtype: str, reps: int, model: str, dev: str):
    import torch
    import torch.nn.functional as F

    dt = getattr(torch, dtype)
    h, heads, inter = component_dims(model)
    m = batch * length
    x = torch.randn(m, h, device=dev, dtype=dt)
    xi = torch.randn(m, inter, device=dev, dtype=dt)
    shapes = {"qkv": (3 * h, h), "out": (h, h), "ffn1": (inter, h), "ffn2": (h, inter)}
    w = {n: torch.randn(*s, device=dev, dtype=dt) * 0.02 for n, s in shapes.items()}
    b = {n: torch.zeros(s[0], device=dev, dtype=dt) for n, s in shapes.items()}
    q = torch.randn(batch, heads, length, h // heads, device=dev, dtype=dt)

    def run(fn):
        def step():
            with torch.inference_mode():
                for _ in range(reps):
                    fn()
            if dev == "cuda":
                torch.cuda.synchronize()

        return step

    return {
        "gemm qkv": run(lambda: F.linear(x, w["qkv"], b["qkv"])),
        "gemm out": run(lambda: F.linear(x, w["out"], b["out"])),
        "gemm ffn1": run(lambda: F.linear(x, w["ffn1"], b["ffn1"])),
        "gemm ffn2": run(lambda: F.linear(xi, w["ffn2"], b["ffn2"])),
        "sdpa": run(lambda: F.scaled_dot_product_attention(q, q, q)),
        "layer_norm": run(lambda: F.layer_norm(x, (h,), eps=1e-12)),
        "gelu": run(lambda: F.gelu(xi)),
    }


def run_components(args, torch_reason: str | None) -> list[dict[str, Any]]:
    rows = []
    model = args.models[0]
    dev = "cuda" if args.device == "gpu" else "cpu"
    for dtype in args.dtypes:
        for batch, length in args.grid:
            mine = component_steps_mlx(batch, length, dtype, 12, model)
            theirs = (
                component_steps_torch(batch, length, dtype, 12, model, dev)
                if torch_reason is None
                else {}
            )
            print(f"\ncomponents x12, {model} {dtype} {batch}x{length}: mlx ms / torch ms")
            for name, step in mine.items():
                steps = {"mlx": step}
                if name in theirs:
                    steps["torch"] = theirs[name]
                s = time_steps(steps, 2, 5, 0.3)
                t = s.get("torch")
                print(
                    f"  {name:<12} {s['mlx'] * 1e3:8.3f} "
                    + (f"{t * 1e3:8.3f}  ({t / s['mlx']:.2f}x)" if t else ""),
                    flush=True,
                )
                rows.append(
                    {
                        "model": model,
                        "component": name,
                        "dtype": dtype,
                        "batch": batch,
                        "length": length,
                        "mlx_seconds": s["mlx"],
                        "torch_seconds": t,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="gpu")
    parser.add_argument("--models", default="bert-base,minilm")
    parser.add_argument("--grid", default="128x128,32x512")
    parser.add_argument("--dtypes", default="bfloat16")
    parser.add_argument("--only", default="", help="comma list of variant names (default all)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--components", action="store_true", help="also time layer pieces")
    parser.add_argument(
        "--components-only", action="store_true", help="only the layer pieces (first model)"
    )
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}")
    args.grid = parse_grid(args.grid)
    args.dtypes = args.dtypes.split(",")
    args.only = [v for v in args.only.split(",") if v]
    if args.smoke:
        args.warmup, args.iters, args.min_seconds = 1, 1, 0.0
    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    torch_reason = "disabled by --no-torch" if args.no_torch else torch_available()
    if torch_reason:
        print(f"PyTorch reference skipped: {torch_reason}", file=sys.stderr)
    env = environment(args.device, torch_reason)
    print(json.dumps(env, indent=1, default=str), flush=True)
    result: dict[str, Any] = {"environment": env}
    if not args.components_only:
        result["variants"] = run_cells(args, torch_reason)
    if args.components or args.components_only:
        result["components"] = run_components(args, torch_reason)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
