"""Check that saved mlxbert task-model folders load in transformers and give the same outputs.

Two halves, two environments:

1. ``make`` (the project's environment, MLX): fine-tune nothing, just build task models on
   the tiny fixtures (BERT, ModernBERT, NeoBERT) for several heads — GLUE SST-2 (2 classes),
   MNLI (3), STS-B (regression, with a fitted target scaler), a one-logit binary head —
   perturb their head weights so nothing is at its initial value, save each folder with
   ``save_task_model`` and store mlxbert's logits for a few sentence pairs.
2. ``check`` (an environment with torch + transformers): load every folder with
   ``AutoTokenizer`` and ``AutoModelForSequenceClassification`` and compare the logits
   (NeoBERT needs its authors' remote code, which transformers cannot fetch offline: it is
   reported as skipped when unavailable).

Usage::

    python3 -m venv /tmp/gluevenv && /tmp/gluevenv/bin/pip install torch==2.13.0 transformers
    .venv/bin/python tools/glue_hf_check.py --fixtures ../shared/fixtures --out /tmp/hfcheck \\
        --torch-python /tmp/gluevenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PAIRS = [
    ("The quick brown fox jumps over the lazy dog.", "A fox jumps."),
    ("Hello world!", "Goodbye."),
    ("What is the capital of France?", "Paris is the capital of France."),
]
CASES = [  # (name, fixture, task, head options)
    ("bert-sst2", "bert", "sst2", {}),
    ("bert-mnli", "bert", "mnli", {}),
    ("bert-stsb", "bert", "stsb", {}),
    ("bert-binary", "bert", "binary", {}),
    ("modernbert-sst2", "modernbert", "sst2", {}),
    ("modernbert-stsb", "modernbert", "stsb", {}),
    ("neobert-mnli", "neobert", "mnli", {}),
]
TOLERANCE = 1e-4


def make(fixtures: Path, out: Path) -> None:
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten, tree_unflatten

    from mlxbert_glue import create_model_and_tokenizer, save_task_model

    mx.random.seed(0)
    manifest = []
    for name, fixture, task, options in CASES:
        model, tokenizer, info = create_model_and_tokenizer(
            fixtures / fixture, task, labels=["no", "yes"] if task == "binary" else None,
            head_options=options,
        )  # fmt: skip
        # Move every head weight away from its initial value (zeros, ones, copied pooler).
        params = tree_flatten(model.head.parameters())
        model.head.update(
            tree_unflatten([(k, v + 0.05 * mx.random.normal(v.shape)) for k, v in params])
        )
        if task == "stsb":
            model.head.fit_scaler(np.array([0.0, 1.5, 5.0, 3.2]))
        model.eval()
        enc = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], return_tensors="mx")
        logits = model(
            enc["input_ids"],
            attention_mask=enc["attention_mask"],
            token_type_ids=enc.get("token_type_ids"),
        )
        folder = save_task_model(model, tokenizer, out / name, info=info, max_length=64)
        meta = json.loads((folder / "mlxbert.json").read_text())
        values = np.array(logits.astype(mx.float32))
        if task == "binary":  # transformers sees the equivalent two-logit classifier [0, z]
            values = np.stack([np.zeros_like(values), values], axis=-1)
        if task == "stsb":  # transformers' regression output is in the original units
            values = model.head.predict(values)[:, None]
        manifest.append(
            {
                "name": name,
                "folder": str(folder),
                "hf_compatible": meta["hf_compatible"],
                "logits": values.reshape(len(PAIRS), -1).tolist(),
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"wrote {len(manifest)} folders to {out}")


def check(out: Path) -> int:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = json.loads((out / "manifest.json").read_text())
    failures = 0
    for case in manifest:
        name = case["name"]
        if not case["hf_compatible"]:
            print(f"FAIL {name}: the folder is not marked hf_compatible")
            failures += 1
            continue
        try:
            tok = AutoTokenizer.from_pretrained(case["folder"])
            model = AutoModelForSequenceClassification.from_pretrained(case["folder"]).eval()
        except (ValueError, OSError) as exc:
            if name.startswith("neobert"):
                print(f"skip {name}: transformers cannot build NeoBERT offline ({exc})"[:200])
                continue
            raise
        enc = tok([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits.numpy()
        diff = float(np.abs(logits - np.array(case["logits"])).max())
        status = "ok  " if diff <= TOLERANCE else "FAIL"
        failures += status == "FAIL"
        print(f"{status} {name}: {type(model).__name__}, max |Δlogit| = {diff:.2e}")
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fixtures", type=Path, default=Path("../shared/fixtures"))
    p.add_argument("--out", type=Path, default=Path("/tmp/glue-hf-check"))
    p.add_argument("--torch-python", help="python of an environment with torch + transformers")
    p.add_argument("--check-only", action="store_true", help="run the transformers half only")
    args = p.parse_args()
    if args.check_only:
        return check(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    make(args.fixtures, args.out)
    if args.torch_python:
        cmd = [args.torch_python, __file__, "--check-only", "--out", str(args.out)]
        return subprocess.call(cmd)
    print("now run the check half with torch + transformers: --check-only --out", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
