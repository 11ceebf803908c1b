"""Check that ``mlxbert export --format hf`` folders load in transformers with the same
outputs.

Two halves, two environments (as ``tools/glue_hf_check.py``):

1. ``make`` (the project's environment): task models on the tiny fixtures (BERT and
   ModernBERT classifiers, the default head; a BERT regression head with a fitted scaler)
   and plain encoders (the tiny BERT, ModernBERT and the real all-MiniLM-L6-v2), each
   exported with ``export_model(..., "hf")``; mlxbert's outputs for a few texts are stored.
2. ``check`` (torch + transformers): ``AutoModelForSequenceClassification`` /
   ``AutoModel`` on every hf folder; logits / hidden states on real tokens compared with
   mlxbert's.

Usage::

    .venv/bin/python tools/export_hf_check.py --fixtures ../shared/fixtures --out /tmp/exphf \\
        --torch-python /path/to/venv-with-torch/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello world!", "What is MLX?"]
TOLERANCE = 1e-4


def make(fixtures: Path, out: Path) -> None:
    import mlxbert_core  # noqa: F401  isort: skip

    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten, tree_unflatten

    from mlxbert_core import from_pretrained, get_preset, load_tokenizer
    from mlxbert_glue import Classifier, create_task_model, export_model, save_task_model

    mx.random.seed(0)
    manifest = []
    cases = [
        ("bert-multiclass", fixtures / "bert", "multiclass", {"labels": ["a", "b", "c"]}),
        ("modernbert-binary", fixtures / "modernbert", "multiclass", {"labels": ["n", "p"]}),
        ("bert-regression", fixtures / "bert", "regression", {}),
    ]
    for name, source, head, options in cases:
        model, tok, info = create_task_model(source, head, **options)
        params = tree_flatten(model.head.parameters())
        model.head.update(
            tree_unflatten([(k, v + 0.05 * mx.random.normal(v.shape)) for k, v in params])
        )
        if head == "regression":
            model.head.fit_scaler(np.array([0.0, 1.5, 5.0, 3.2]))
        folder = save_task_model(model, tok, out / f"{name}-model", info=info)
        export_model(folder, "hf", out / name, overwrite=True)
        clf = Classifier.from_pretrained(folder)
        values = clf.logits(TEXTS)
        if head == "regression":  # transformers outputs the original units
            values = model.head.predict(values).reshape(len(TEXTS), -1)
        manifest.append({"name": name, "kind": "classifier", "folder": str(out / name),
                         "values": np.asarray(values).tolist()})  # fmt: skip
    minilm = Path(get_preset("all-minilm-l6-v2").resolve())
    for name, source in (("bert-encoder", fixtures / "bert"),
                         ("modernbert-encoder", fixtures / "modernbert"),
                         ("minilm-encoder", minilm)):  # fmt: skip
        export_model(source, "hf", out / name, overwrite=True)
        enc = load_tokenizer(source)(TEXTS, return_tensors="np")
        model = from_pretrained(source)
        hidden = model(**{k: mx.array(v) for k, v in enc.items()}).last_hidden_state
        manifest.append({"name": name, "kind": "encoder", "folder": str(out / name),
                         "values": np.array(hidden).tolist(),
                         "mask": enc["attention_mask"].tolist()})  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest))
    print(f"wrote {len(manifest)} folders to {out}")


def check(out: Path) -> int:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    failures = 0
    for case in json.loads((out / "manifest.json").read_text()):
        tok = AutoTokenizer.from_pretrained(case["folder"])
        enc = tok(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            if case["kind"] == "classifier":
                model = AutoModelForSequenceClassification.from_pretrained(case["folder"])
                got = model.eval()(**enc).logits.numpy()
                diff = float(np.abs(got - np.array(case["values"])).max())
            else:
                model = AutoModel.from_pretrained(case["folder"]).eval()
                got = model(**enc).last_hidden_state.numpy()
                real = np.array(case["mask"], bool)
                diff = float(np.abs(got - np.array(case["values"]))[real].max())
        ok = diff <= TOLERANCE
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {case['name']}: {type(model).__name__}, "
              f"max |Δ| = {diff:.2e}")  # fmt: skip
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fixtures", type=Path, default=Path("../shared/fixtures"))
    p.add_argument("--out", type=Path, default=Path("/tmp/export-hf-check"))
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
