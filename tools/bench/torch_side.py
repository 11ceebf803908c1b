"""The PyTorch side of ``isolated.py``: transformers BERT inference and training steps.

Imports torch and transformers only (never mlx or mlxbert), so that it runs as PyTorch does
in a process of its own.
"""

from __future__ import annotations

import time

import numpy as np

GEOMETRY = {
    "bert-base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "minilm": dict(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    ),
}
COMMON = dict(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)


def _setup(device: str, fp32_mode: str):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = fp32_mode == "tf32"
    torch.backends.cudnn.allow_tf32 = fp32_mode == "tf32"
    return torch, ("cuda" if device == "gpu" else "cpu")


def _sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def encoder(model: str, inputs: dict, dtype: str, device: str, fp32_mode: str, iters: int,
            warmup: int) -> list[float]:  # fmt: skip
    """Seconds per forward (``BertModel``, SDPA, inference mode), ``iters`` times."""
    torch, dev = _setup(device, fp32_mode)
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(**COMMON, **GEOMETRY[model])
    cfg._attn_implementation = "sdpa"
    net = BertModel(cfg).eval().to(device=dev, dtype=getattr(torch, dtype))
    ids = torch.from_numpy(inputs["input_ids"].astype(np.int64)).to(dev)
    mask = torch.from_numpy(inputs["attention_mask"].astype(np.int64)).to(dev)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start = time.perf_counter()
            net(input_ids=ids, attention_mask=mask).last_hidden_state  # noqa: B018
            _sync(torch, dev)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def train(model: str, inputs: dict, device: str, fp32_mode: str, steps: int, warmup: int,
          rounds: int) -> list[float]:  # fmt: skip
    """Seconds per training step (``BertForSequenceClassification``, AdamW, clipping at 1.0;
    AMP bf16 and fused AdamW on a GPU, float32 on a CPU), the median of ``steps`` per round."""
    torch, dev = _setup(device, fp32_mode)
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        **COMMON, **GEOMETRY[model], hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0,
        num_labels=2,
    )  # fmt: skip
    cfg._attn_implementation = "sdpa"
    net = BertForSequenceClassification(cfg).to(dev).train()
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
    rest = [p for n, p in net.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
        lr=2e-5, **({"fused": True} if dev == "cuda" else {}),
    )  # fmt: skip
    batch = {k: torch.from_numpy(v.astype(np.int64)).to(dev) for k, v in inputs.items()}
    amp = dev == "cuda"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=amp):
            loss = net(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        return loss

    for _ in range(warmup):
        step()
    _sync(torch, dev)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        float(loss.detach())
        _sync(torch, dev)
        out.append((time.perf_counter() - start) / steps)
    return out


def versions() -> dict:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads()}  # fmt: skip
