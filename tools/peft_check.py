"""Check that adapters written by mlxbert-lora load in Hugging Face PEFT and give the same logits.

The two halves run in different environments:

    # 1. with mlxbert (mlx): train-free random adapters on the tiny BERT classifier, saved as
    #    PEFT folders, plus the logits mlxbert computes with them
    .venv/bin/python tools/peft_check.py --write /tmp/peft-check

    # 2. with torch + transformers + peft (no mlx needed): load each folder with
    #    PeftModel.from_pretrained on transformers' BertForSequenceClassification and compare
    python -m venv /tmp/peftvenv
    /tmp/peftvenv/bin/pip install torch transformers peft safetensors numpy
    /tmp/peftvenv/bin/python tools/peft_check.py --check /tmp/peft-check

The reverse direction (PEFT writes, mlxbert-lora reads) is covered by
tests/test_lora_peft_fixtures.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "peft"
ATOL = 1e-4

# name -> LoraConfig keyword arguments (all on the tiny BERT classifier, classifier trained too)
VARIANTS: dict[str, dict] = {
    "lora": {"r": 8, "alpha": 16, "target_modules": ["query", "value"]},
    "rslora": {"r": 8, "alpha": 16, "target_modules": ["query", "value"], "use_rslora": True},
    "dora": {"r": 4, "alpha": 8, "target_modules": ["query", "key", "value"], "use_dora": True},
    "pattern": {
        "r": 4,
        "alpha": 8,
        "target_modules": ["query", "value", "dense"],
        "rank_pattern": {"layer.1.attention.self.query": 8, "output.dense": 2},
        "alpha_pattern": {"layer.2.attention.self.value": 32, "intermediate.dense": 4},
    },
    "expressive-preset": {"preset": "expressive"},
    "bias-all": {"r": 4, "alpha": 8, "target_modules": ["query", "value"], "bias": "all"},
}


def write(out_dir: Path) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    import mlxbert_core  # first: sets up the fast BLAS before mlx loads
    from mlxbert_lora import LoraConfig, apply_lora, lora_layers, save_peft_adapter

    io = np.load(FIXTURES / "io.npz")
    inputs = [mx.array(io[k]) for k in ("input_ids", "attention_mask", "token_type_ids")]
    rng = np.random.default_rng(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"base": str(FIXTURES / "base"), "variants": {}}
    for name, kwargs in VARIANTS.items():
        model = mlxbert_core.from_pretrained(FIXTURES / "base", task="sequence_classification")
        kwargs = dict(kwargs, modules_to_save=["classifier"], task_type="SEQ_CLS")
        preset = kwargs.pop("preset", None)
        config = (
            LoraConfig.preset(preset, model=model, **kwargs) if preset else LoraConfig(**kwargs)
        )
        apply_lora(model, config)
        # Non-trivial adapters: B != 0, perturbed magnitudes, classifier and biases moved.
        for _, layer in lora_layers(model):
            layer.lora_B.weight = mx.array(
                0.2 * rng.normal(size=layer.lora_B.weight.shape), mx.float32
            )
            if layer.use_dora:
                m = np.array(layer.lora_magnitude_vector)
                layer.lora_magnitude_vector = mx.array(
                    m * (1 + 0.1 * rng.normal(size=m.shape)), mx.float32
                )
        model.classifier.weight = model.classifier.weight + mx.array(
            0.1 * rng.normal(size=model.classifier.weight.shape), mx.float32
        )
        if config.bias == "all":
            for key, value in tree_flatten(model.trainable_parameters()):
                if key.endswith("bias") and not key.startswith("classifier"):
                    module = model
                    for part in key.split(".")[:-1]:
                        module = module[int(part)] if isinstance(module, list) else module[part]
                    module.bias = value + mx.array(0.1 * rng.normal(size=value.shape), mx.float32)
        model.eval()
        logits = np.array(model(*inputs).logits)
        save_peft_adapter(model, out_dir / name, base_model_name_or_path=str(FIXTURES / "base"))
        np.save(out_dir / name / "mlx_logits.npy", logits)
        manifest["variants"][name] = {"modules": len(lora_layers(model)), **config.to_peft_dict()}
        print(f"wrote {name}: {len(lora_layers(model))} adapted layers")
    np.savez(
        out_dir / "inputs.npz",
        **{k: io[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def check(out_dir: Path) -> int:
    import peft
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    inputs = {k: torch.tensor(v) for k, v in np.load(out_dir / "inputs.npz").items()}
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    )
    reference = base_logits(manifest["base"], inputs)
    failures = 0
    for name in manifest["variants"]:
        base = AutoModelForSequenceClassification.from_pretrained(
            manifest["base"], attn_implementation="eager"
        )
        model = PeftModel.from_pretrained(base, out_dir / name).eval()
        n_lora = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
        with torch.no_grad():
            logits = model(**inputs).logits.numpy()
            merged = model.merge_and_unload()(**inputs).logits.numpy()
        ours = np.load(out_dir / name / "mlx_logits.npy")
        diff, diff_merged = np.abs(logits - ours).max(), np.abs(merged - ours).max()
        moved = np.abs(ours - reference).max()
        ok = (
            diff <= ATOL and diff_merged <= ATOL and n_lora == manifest["variants"][name]["modules"]
        )
        failures += not ok
        print(
            f"{name:18s} adapted layers {n_lora:2d}  max|PEFT - mlx| {diff:.2e}  "
            f"merged {diff_merged:.2e}  (adapter moves logits by {moved:.2f})  {'OK' if ok else 'FAIL'}"
        )
    print("all match" if not failures else f"{failures} variants differ")
    return 1 if failures else 0


def base_logits(base_dir, inputs):
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        return model(**inputs).logits.numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, metavar="DIR", help="write adapters with mlxbert-lora")
    group.add_argument("--check", type=Path, metavar="DIR", help="load them with PEFT and compare")
    args = parser.parse_args(argv)
    if args.write:
        write(args.write)
        return 0
    return check(args.check)


if __name__ == "__main__":
    sys.exit(main())
