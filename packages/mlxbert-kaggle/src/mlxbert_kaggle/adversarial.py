"""Adversarial validation: can a classifier tell the training rows from the test rows?

Both tables are rendered to text by the same template ``train`` would use (built from the
training table, its target left out), labelled train = 0 / test = 1, and a classifier is
cross-validated on them. A CV ROC AUC near 0.5 means the test rows look like the training
rows (a random CV split is then a fair stand-in for the test set); well above 0.5, the sets
differ and the training rows that look most like test rows -- the highest out-of-fold
P(test) -- make a validation set closer to what the submission will be scored on.

The classifier is scikit-learn's TF-IDF (word 1-2-grams, sublinear tf) + logistic
regression: the question is whether the two sets' *texts* differ, which word statistics
answer well; it runs in seconds where a cross-validated encoder would take as long as a
training run on a CPU, and it is deterministic. Its strongest words are reported too.

Output folder::

    DIR/adversarial.json    CV AUC (and per fold), rows, the most test-like words and
                            training rows
    DIR/train_rows.csv      every training row (id, text) with its out-of-fold P(test),
                            most test-like first
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from mlxbert_heads import metrics as M

from .atomic import write_json
from .errors import InputError
from .outputs import check_output_dir, claimed_dir
from .progress import Reporter
from .tables import read_table, require_columns, write_table
from .template import default_template

RESULT_FILE = "adversarial.json"
ROWS_FILE = "train_rows.csv"


def _frame(data: pd.DataFrame | str | Path, what: str, keep: list[str]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    return read_table(data, keep_text=keep, what=what)


def adversarial_validation(
    train: pd.DataFrame | str | Path,
    test: pd.DataFrame | str | Path,
    *,
    output: str | Path,
    text: Sequence[str] = (),
    features: Sequence[str] | None = None,
    template: str | None = None,
    exclude: Sequence[str] = (),
    target: Sequence[str] = (),
    id_col: str | None = None,
    folds: int = 5,
    top: int = 20,
    seed: int = 0,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Train-vs-test AUC and the most distinguishing rows; returns (and writes)
    ``adversarial.json``'s content. ``target``: the training table's target column(s), left
    out of the text (the test table has none)."""
    reporter = reporter or Reporter()
    if folds < 2:
        raise InputError(f"--folds must be >= 2, got {folds}")
    check_output_dir(output, overwrite=overwrite)
    keep = [id_col] if id_col else []
    a = _frame(train, "training", keep)
    b = _frame(test, "test", keep)
    for frame, name in ((a, "training"), (b, "test")):
        require_columns(frame, [*text, *(features or []), *keep], f"the {name} table")
    tmpl = default_template(
        a,
        targets=list(target),
        text_columns=text,
        feature_columns=features,
        exclude=[*exclude, *keep],
        format=template,
    )
    texts_a = tmpl.render(a, a.attrs.get("source", "the training table"))
    texts_b = tmpl.render(b, b.attrs.get("source", "the test table"))
    texts = texts_a + texts_b
    y = np.r_[np.zeros(len(texts_a), np.int64), np.ones(len(texts_b), np.int64)]
    if min(len(texts_a), len(texts_b)) < folds:
        raise InputError(f"each table needs at least {folds} rows for {folds}-fold CV")
    reporter.log(
        f"train {len(texts_a)} rows vs test {len(texts_b)} rows; text: {tmpl.describe()!r}"
    )
    proba = np.zeros(len(texts))
    per_fold = []
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(texts, y)
    for fit_rows, held in splits:
        model, vectors = _fit([texts[i] for i in fit_rows], y[fit_rows])
        proba[held] = model.predict_proba(vectors.transform([texts[i] for i in held]))[:, 1]
        per_fold.append(M.roc_auc(y[held], proba[held]))
    auc = M.roc_auc(y, proba)
    model, vectors = _fit(texts, y)
    words = np.asarray(vectors.get_feature_names_out())
    order = np.argsort(model.coef_[0])
    ids = a[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(texts_a))]
    rows = pd.DataFrame({"id": ids, "text": texts_a, "p_test": proba[: len(texts_a)]})
    rows = rows.sort_values("p_test", ascending=False, kind="stable").reset_index(drop=True)
    result = {
        "auc": auc,
        "fold_auc": per_fold,
        "folds": folds,
        "rows": {"train": len(texts_a), "test": len(texts_b)},
        "template": tmpl.describe(),
        "classifier": "TF-IDF word 1-2-grams + logistic regression (scikit-learn)",
        "test_like_words": words[order[::-1][:top]].tolist(),
        "train_like_words": words[order[:top]].tolist(),
        "most_test_like_rows": rows.head(top).to_dict(orient="records"),
        "verdict": verdict(auc),
    }
    with claimed_dir(output, overwrite=overwrite):
        write_table(rows, Path(output) / ROWS_FILE)
        write_json(Path(output) / RESULT_FILE, result)
    return result


def _fit(texts: list[str], y: np.ndarray):
    vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=50000)
    try:
        x = vectors.fit_transform(texts)
    except ValueError:  # too few rows for min_df=2
        vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        x = vectors.fit_transform(texts)
    return LogisticRegression(C=1.0, max_iter=1000).fit(x, y), vectors


def verdict(auc: float) -> str:
    """A plain reading of the AUC."""
    if auc < 0.6:
        return "no meaningful shift: the test rows look like the training rows"
    if auc < 0.75:
        return "a mild shift: validate on the most test-like training rows as well"
    return "a strong shift: the test rows differ; a random CV split overrates the model"


__all__ = ["adversarial_validation", "verdict"]
