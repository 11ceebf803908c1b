"""Where a BERT encoder's bf16 time goes on an NVIDIA GPU, and whether a fused CUDA kernel helps.

1. ``encoder``: the default (compiled) forward of a random-weight BERT encoder, seconds/call.
2. ``gemms``: the same forward's matrix products alone (q/k/v, attention output, FFN in and
   out, with their bias adds, layer after layer, compiled): the ceiling MLX's GEMMs leave.
   ``sdpa``: the fused attention alone.
3. ``fused``: residual add + LayerNorm as one ``mx.fast.cuda_kernel`` (one block per row,
   float32 statistics) in place of MLX's add kernel followed by its layer-norm kernel, timed
   alone against ``mx.fast.layer_norm(x + r)`` and inside the encoder (patched in for the run).

    python3 tools/bench/gpu_fused.py --grid 128x128,32x512 --json fused.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial

import mlxbert_core  # noqa: F401  isort: skip
import mlx.core as mx

from mlxbert_core.models import bert
from mlxbert_core.models.bert import BertModel, BertModelArgs

SOURCE = """
    constexpr int BS = 256;
    constexpr int PER = (H + BS - 1) / BS;
    __shared__ float red_s[BS / 32], red_q[BS / 32];
    int row = blockIdx.x;
    int tid = threadIdx.x;
    const T* xr = x + (size_t)row * H;
    const T* rr = r + (size_t)row * H;
    float vals[PER];
    float s = 0.f, q = 0.f;
    #pragma unroll
    for (int i = 0; i < PER; ++i) {
        int c = tid + i * BS;
        float v = 0.f;
        if (c < H) v = static_cast<float>(xr[c]) + static_cast<float>(rr[c]);
        vals[i] = v; s += v; q += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) {
        s += __shfl_xor_sync(0xffffffff, s, o);
        q += __shfl_xor_sync(0xffffffff, q, o);
    }
    int warp = tid / 32, lane = tid % 32;
    if (lane == 0) { red_s[warp] = s; red_q[warp] = q; }
    __syncthreads();
    if (warp == 0) {
        s = lane < BS / 32 ? red_s[lane] : 0.f;
        q = lane < BS / 32 ? red_q[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) {
            s += __shfl_xor_sync(0xffffffff, s, o);
            q += __shfl_xor_sync(0xffffffff, q, o);
        }
        if (lane == 0) { red_s[0] = s; red_q[0] = q; }
    }
    __syncthreads();
    float mean = red_s[0] / H;
    float var = fmaxf(red_q[0] / H - mean * mean, 0.f);
    float rstd = rsqrtf(var + static_cast<float>(eps[0]));
    #pragma unroll
    for (int i = 0; i < PER; ++i) {
        int c = tid + i * BS;
        if (c < H) {
            float y = (vals[i] - mean) * rstd * static_cast<float>(w[c]) + static_cast<float>(b[c]);
            out[(size_t)row * H + c] = static_cast<T>(y);
        }
    }
"""
KERNEL = mx.fast.cuda_kernel(
    name="mlxbert_residual_layernorm",
    input_names=["x", "r", "w", "b", "eps"],
    output_names=["out"],
    source=SOURCE,
)


def residual_layernorm(x: mx.array, r: mx.array, norm) -> mx.array:
    shape, hidden = x.shape, x.shape[-1]
    rows = x.size // hidden
    (out,) = KERNEL(
        inputs=[x.reshape(rows, hidden), r.reshape(rows, hidden), norm.weight, norm.bias,
                mx.array([norm.eps], dtype=mx.float32)],
        template=[("T", x.dtype), ("H", hidden)],
        grid=(rows * 256, 1, 1),
        threadgroup=(256, 1, 1),
        output_shapes=[(rows, hidden)],
        output_dtypes=[x.dtype],
    )  # fmt: skip
    return out.reshape(shape)


def last_hidden(model, ids):
    return model(ids).last_hidden_state


def timed(fn, iters: int) -> float:
    for _ in range(3):
        mx.eval(fn())
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemms_only(model: BertModel, batch: int, seq: int, dtype):
    """The forward's matrix products with their bias adds, in order, compiled."""
    args = model.config
    h, inter = args.hidden_size, args.intermediate_size
    x0 = mx.random.normal((batch * seq, h)).astype(dtype)
    weights = []
    for layer in model.encoder.layer:
        att = layer.attention
        qkv_w = mx.concatenate([att.self.query.weight, att.self.key.weight, att.self.value.weight])
        qkv_b = mx.concatenate([att.self.query.bias, att.self.key.bias, att.self.value.bias])
        weights.append((qkv_w, qkv_b, att.output.dense.weight, att.output.dense.bias,
                        layer.intermediate.dense.weight, layer.intermediate.dense.bias,
                        layer.output.dense.weight, layer.output.dense.bias))  # fmt: skip
    mx.eval(weights)

    @mx.compile
    def run(x):
        for qw, qb, ow, ob, iw, ib, fw, fb in weights:
            qkv = mx.addmm(qb, x, qw.T)
            x = mx.addmm(ob, qkv[:, :h], ow.T)
            mid = mx.addmm(ib, x, iw.T)
            x = mx.addmm(fb, mid, fw.T)
        return x

    del inter
    return lambda: run(x0)


def sdpa_only(model: BertModel, batch: int, seq: int, dtype):
    args = model.config
    heads, dim = args.num_attention_heads, args.hidden_size // args.num_attention_heads
    q = mx.random.normal((batch, heads, seq, dim)).astype(dtype)
    scale = dim**-0.5
    layers = len(model.encoder.layer)

    @mx.compile
    def run(q):
        out = q
        for _ in range(layers):
            out = mx.fast.scaled_dot_product_attention(out, q, q, scale=scale)
        return out

    return lambda: run(q)


def patched(enabled: bool):
    """Route BertSelfOutput / BertOutput through the fused kernel (or back)."""
    classes = (bert.BertSelfOutput, bert.BertOutput)
    if not hasattr(patched, "original"):
        patched.original = {c: c.__call__ for c in classes}
    for cls in classes:
        if enabled:
            cls.__call__ = lambda self, x, residual: residual_layernorm(
                bert.linear(self.dense, x), residual, self.LayerNorm
            )
        else:
            cls.__call__ = patched.original[cls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="128x128,32x512")
    parser.add_argument("--models", default="bert-base,minilm")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    mx.set_default_device(mx.gpu)
    dtype = mx.bfloat16
    geometry = {
        "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                          intermediate_size=3072),
        "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                       intermediate_size=1536),
    }  # fmt: skip
    rows = []
    for name in args.models.split(","):
        mx.random.seed(0)
        model = BertModel(BertModelArgs.from_dict({"vocab_size": 30522, **geometry[name]}))
        model.eval()
        model.set_dtype(dtype)
        mx.eval(model.parameters())
        for cell in args.grid.split(","):
            batch, seq = (int(v) for v in cell.split("x"))
            ids = mx.random.randint(1000, 30000, (batch, seq)).astype(mx.int32)
            x = mx.random.normal((batch * seq, model.config.hidden_size)).astype(dtype)
            r = mx.random.normal(x.shape).astype(dtype)
            norm = model.encoder.layer[0].output.LayerNorm
            ln = mx.compile(lambda x, r, n=norm: mx.fast.layer_norm(x + r, n.weight, n.bias, n.eps))
            ref = ln(x, r)
            diff = float(mx.max(mx.abs(residual_layernorm(x, r, norm) - ref).astype(mx.float32)))
            row = {"model": name, "batch": batch, "seq": seq, "fused_max_diff": diff}
            row["ln_add_s"] = timed(partial(ln, x, r), args.iters * 5)
            row["ln_fused_s"] = timed(partial(residual_layernorm, x, r, norm), args.iters * 5)
            forward = partial(last_hidden, model, ids)
            baseline = forward()
            row["encoder_s"] = timed(forward, args.iters)
            row["gemms_s"] = timed(gemms_only(model, batch, seq, dtype), args.iters)
            row["sdpa_s"] = timed(sdpa_only(model, batch, seq, dtype), args.iters)
            patched(True)
            model.__dict__.pop("_compiled_cache", None)
            fused_out = forward()
            row["encoder_fused_diff"] = float(
                mx.max(mx.abs(fused_out - baseline).astype(mx.float32))
            )
            row["encoder_fused_s"] = timed(forward, args.iters)
            patched(False)
            model.__dict__.pop("_compiled_cache", None)
            row["encoder_again_s"] = timed(forward, args.iters)
            row["gemm_share"] = row["gemms_s"] / row["encoder_s"]
            row["seq_per_s"] = batch / row["encoder_s"]
            row["seq_per_s_fused"] = batch / row["encoder_fused_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
