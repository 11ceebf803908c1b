"""Kaggle presets: 5-fold CV score and wall time of mlxbert (all-MiniLM-L6-v2 by default),
next to a scikit-learn reference in the same run (TF-IDF word/char n-grams of the *same*
rendered texts, on the *same* folds, with LogisticRegression or Ridge).

    python tools/bench/kaggle.py --json kaggle.json                      # all three presets
    python tools/bench/kaggle.py --presets titanic --epochs 3 --device cpu
    python tools/bench/kaggle.py --presets nlp-disaster --max-length 64 --output-dir runs/bench

Targets: nlp-disaster F1 >= 0.80, titanic accuracy >= 0.78; house-prices RMSLE is reported.
The data folder defaults to ``../shared/data/kaggle`` next to the repository.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

# mlxbert_core must be imported before mlx.core (OpenBLAS preload on Linux).
import mlxbert_core
from mlxbert_kaggle import get_preset, read_table, run_preset, score
from mlxbert_kaggle.presets import PRESETS
from mlxbert_kaggle.targets import TargetSpec
from mlxbert_kaggle.template import TextTemplate

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"nlp-disaster": ("f1", 0.80, ">="), "titanic": ("accuracy", 0.78, ">=")}


def sklearn_reference(run_dir: Path, preset: str, data_dir: Path) -> dict[str, Any]:
    """TF-IDF + linear model on the run's texts and folds: the reference score and time."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge

    metrics = json.loads((run_dir / "metrics.json").read_text())
    spec = TargetSpec.from_dict(metrics["target"])
    template = TextTemplate.from_dict(metrics["template"])
    folds = np.array(json.loads((run_dir / "_work" / "folds.json").read_text()))
    p = get_preset(preset)
    frame = spec.clean(read_table(p.locate(data_dir) / p.train_file, keep_text=[p.id_col]))
    oof_ids = read_table(run_dir / "oof.csv", keep_text=[p.id_col])[p.id_col].tolist()
    frame = frame.set_index(p.id_col).loc[oof_ids].reset_index()
    texts = np.array(template.render(frame), dtype=object)
    y = spec.encode(frame)
    started = time.perf_counter()
    oof = np.zeros(len(frame) if spec.task != "regression" else (len(frame), 1))
    for k in np.unique(folds):
        train, valid = folds != k, folds == k
        words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
        x_train = hstack([words.fit_transform(texts[train]), chars.fit_transform(texts[train])])
        x_valid = hstack([words.transform(texts[valid]), chars.transform(texts[valid])])
        if spec.task == "regression":
            oof[valid] = Ridge(alpha=1.0).fit(x_train, y[train]).predict(x_valid).reshape(-1, 1)
        else:
            model = LogisticRegression(C=4.0, max_iter=2000).fit(x_train, y[train])
            oof[valid] = model.predict_proba(x_valid)[:, 1]
    seconds = time.perf_counter() - started
    return {"metrics": score(spec, y, oof), "seconds": seconds, "method": "tfidf+linear"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/kaggle")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/bench-kaggle"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--max-length", type=int, default=None, help="default: the preset's")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--lora", default=None)
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None)
    parser.add_argument("--resume", action="store_true", help="reuse finished folds")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    if args.device:
        from mlxbert_core.runtime import set_device

        set_device(args.device)
    from mlxbert_kaggle.progress import RichReporter

    results: dict[str, Any] = {
        "runtime": mlxbert_core.runtime_info(),
        "machine": platform.platform(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "presets": {},
    }
    for name in args.presets:
        out = args.output_dir / name
        started = time.perf_counter()
        summary = run_preset(
            name,
            args.data_dir,
            out,
            folds=args.folds,
            max_rows=args.max_rows,
            resume=args.resume,
            overwrite=not args.resume,
            reporter=RichReporter(),
            model=args.model,
            epochs=args.epochs,
            max_length=args.max_length,
            batch_size=args.batch_size,
            lr=args.lr,
            lora=args.lora,
        )
        wall = time.perf_counter() - started
        metric = summary["metric"]
        reference = sklearn_reference(out, name, args.data_dir)
        ref_score = reference["metrics"][metric]
        entry = {
            "metric": metric,
            "cv": summary["score"],
            "fold_mean": summary["fold_mean"][metric],
            "fold_std": summary["fold_std"][metric],
            "wall_seconds": wall,
            "rows": summary["rows"]["train"],
            "config": summary["config"],
            "reference": {
                "cv": ref_score,
                "seconds": reference["seconds"],
                "method": reference["method"],
            },
            "ratio_to_reference": summary["score"] / ref_score if ref_score else None,
        }
        if name in TARGETS:
            tm, goal, _ = TARGETS[name]
            entry["target"] = {"metric": tm, "goal": goal, "met": summary["cv"][tm] >= goal}
        results["presets"][name] = entry
        print(
            f"{name}: CV {metric} {summary['score']:.4f} (folds {entry['fold_mean']:.4f} ± "
            f"{entry['fold_std']:.4f}) in {wall:.0f} s; scikit-learn TF-IDF reference "
            f"{ref_score:.4f} ({reference['seconds']:.1f} s)"
            + (
                f"; target {entry['target']['goal']} met: {entry['target']['met']}"
                if "target" in entry
                else ""
            ),
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
