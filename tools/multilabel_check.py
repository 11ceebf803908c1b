"""Score a multilabel run on rows it never saw: micro-F1 with its fitted thresholds, with a
plain 0.5 cut, and of the predict-nothing baseline.

    python tools/make_multilabel.py --data-dir ../shared/data/kaggle/nlp-getting-started \\
        --output topics.csv
    mlxbert train --train topics.csv --target topics --label-sep "|" --task multilabel \\
        --text text --id-col id --max-rows 3000 --max-length 64 --output runs/topics
    python tools/multilabel_check.py --run runs/topics --data topics.csv --rows 2000

The held-out rows are the table's rows that ``--max-rows`` did not sample (the same
sampling as training: the run's seed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mlxbert_heads import metrics as M
from mlxbert_kaggle import TablePredictor, read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    summary = json.loads((args.run / "metrics.json").read_text())
    frame = read_table(args.data, keep_text=["id"])
    used = frame.sample(
        n=summary["rows"]["train"] + summary["rows"]["valid"],
        random_state=summary["config"]["seed"],
    ).index
    held = frame.drop(index=used).head(args.rows).reset_index(drop=True)
    predictor = TablePredictor([args.run])
    spec = predictor.target
    truth = spec.encode(spec.clean(held)).astype(int)
    raw = predictor.predict_raw(held)
    fitted = np.asarray(summary.get("threshold") or 0.5)
    results = {
        "rows": len(held),
        "label_share": {n: float(s) for n, s in zip(spec.labels, truth.mean(axis=0))},
        "micro_f1_fitted": M.f1(truth, (raw >= fitted).astype(int), average="micro"),
        "micro_f1_at_0.5": M.f1(truth, (raw >= 0.5).astype(int), average="micro"),
        "micro_f1_predict_nothing": M.f1(truth, np.zeros_like(truth), average="micro"),
        "macro_f1_fitted": M.f1(truth, (raw >= fitted).astype(int), average="macro"),
    }
    print(json.dumps({k: v for k, v in results.items() if k != "label_share"}, indent=2))


if __name__ == "__main__":
    main()
