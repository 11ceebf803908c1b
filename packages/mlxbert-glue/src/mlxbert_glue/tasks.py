"""The nine GLUE tasks: files, columns, labels, metrics and submission names.

Every fact about the official GLUE distribution lives here, in one table, so the reader,
the evaluator and the submission writer cannot disagree about it. Column layouts follow the
files of the official ``glue_data`` folders (the output of GLUE's ``download_glue_data.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Splits a caller may ask for. ``dev``/``test`` on MNLI mean the matched versions;
#: ``dev_mismatched``/``test_mismatched`` and ``diagnostic`` (GLUE's AX set, scored with an
#: MNLI model) exist for MNLI only.
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SplitLayout:
    """How one split is stored: its file and where the fields are.

    ``header``: whether the first row names the columns. Columns are given by name when the
    file has a header, else by position. ``label`` is None for unlabeled (test) files.
    """

    filename: str
    header: bool
    text: str | int
    text_pair: str | int | None
    label: str | int | None
    index: str | int | None = None
    subdir: str | None = None  # folder relative to the GLUE root, when not the task's own


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    ``labels`` are the label values exactly as the tsv files write them (and as GLUE's
    submission server expects them); ``display_labels`` are the human names a trained
    classifier reports. Regression tasks have neither.
    """

    name: str
    dir_name: str
    description: str
    splits: dict[str, SplitLayout]
    labels: tuple[str, ...] | None
    display_labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    submission_files: dict[str, str] = field(default_factory=dict)
    value_range: tuple[float, float] | None = None  # regression targets (STS-B: 0..5)
    skip_malformed: bool = False  # QQP's train file has a few broken rows in some copies

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return self.splits["train"].text_pair is not None

    @property
    def head_task(self) -> str:
        """The mlxbert-heads task type a model for this task is built with."""
        if self.is_regression:
            return "regression"
        return "binary" if self.num_labels == 2 else "multiclass"

    def layout(self, split: str) -> SplitLayout:
        try:
            return self.splits[split]
        except KeyError:
            raise ValueError(
                f"GLUE task {self.name!r} has no split {split!r}; "
                f"available: {', '.join(self.splits)}"
            ) from None

    def eval_splits(self, split: str) -> tuple[str, ...]:
        """The files one evaluation covers: MNLI's ``dev`` is matched plus mismatched."""
        if self.name == "mnli" and split == "dev":
            return ("dev", "dev_mismatched")
        if self.name == "mnli" and split == "test":
            return ("test", "test_mismatched")
        return (split,)


#: The label values of the tasks whose files write 0 / 1, and of the two-way NLI tasks.
_ZERO_ONE = ("0", "1")
_TWO_WAY_NLI = ("entailment", "not_entailment")


def _tsv(filename, text, pair, label, *, header=True, index=None, subdir=None) -> SplitLayout:
    return SplitLayout(filename, header, text, pair, label, index, subdir)


def _standard(text, pair, label, index="index", labeled_index="index") -> dict[str, SplitLayout]:
    """train/dev/test with a header row; test is unlabeled. ``index`` is test's id column,
    ``labeled_index`` train's and dev's (None where those files have none)."""
    return {
        "train": _tsv("train.tsv", text, pair, label, index=labeled_index),
        "dev": _tsv("dev.tsv", text, pair, label, index=labeled_index),
        "test": _tsv("test.tsv", text, pair, None, index=index),
    }


def _mnli_splits() -> dict[str, SplitLayout]:
    """MNLI's matched and mismatched dev and test files, and GLUE's diagnostic set (AX: its
    own folder, scored with an MNLI model)."""

    def layout(filename: str, label: str | None, subdir: str | None = None) -> SplitLayout:
        return _tsv(filename, "sentence1", "sentence2", label, index="index", subdir=subdir)

    return {
        "train": layout("train.tsv", "gold_label"),
        "dev": layout("dev_matched.tsv", "gold_label"),
        "dev_mismatched": layout("dev_mismatched.tsv", "gold_label"),
        "test": layout("test_matched.tsv", None),
        "test_mismatched": layout("test_mismatched.tsv", None),
        "diagnostic": layout("diagnostic.tsv", None, subdir="diagnostic"),
    }


def _task(
    name: str,
    dir_name: str,
    description: str,
    splits: dict[str, SplitLayout],
    *,
    labels: tuple[str, ...] | None = _ZERO_ONE,
    display_labels: tuple[str, ...] | None = None,
    metrics: tuple[str, ...] = ("accuracy",),
    submission_files: dict[str, str] | None = None,
    **options: Any,
) -> GlueTask:
    """A task with what most tasks share by default: 0/1 labels, reported as the files write
    them unless ``display_labels`` names them, accuracy, and test predictions submitted as
    ``<dir_name>.tsv``."""
    return GlueTask(
        name=name,
        dir_name=dir_name,
        description=description,
        splits=splits,
        labels=labels,
        display_labels=labels if display_labels is None else display_labels,
        metrics=metrics,
        submission_files=submission_files or {"test": f"{dir_name}.tsv"},
        **options,
    )


_COLA = _task(
    "cola",
    "CoLA",
    "Corpus of Linguistic Acceptability: is the sentence grammatical?",
    # train/dev have NO header: source, label, original mark, sentence. test has one.
    {
        "train": _tsv("train.tsv", 3, None, 1, header=False),
        "dev": _tsv("dev.tsv", 3, None, 1, header=False),
        "test": _tsv("test.tsv", "sentence", None, None, index="index"),
    },
    display_labels=("unacceptable", "acceptable"),
    metrics=("matthews_corrcoef",),
)

_SST2 = _task(
    "sst2",
    "SST-2",
    "Stanford Sentiment Treebank: is the phrase positive?",
    _standard("sentence", None, "label", labeled_index=None),
    display_labels=("negative", "positive"),
)

_MRPC = _task(
    "mrpc",
    "MRPC",
    "Microsoft Research Paraphrase Corpus: are the sentences paraphrases?",
    _standard("#1 String", "#2 String", "Quality", labeled_index=None),
    display_labels=("not_equivalent", "equivalent"),
    metrics=("f1", "accuracy"),
)

_QQP = _task(
    "qqp",
    "QQP",
    "Quora Question Pairs: are the questions duplicates?",
    _standard("question1", "question2", "is_duplicate", index="id", labeled_index="id"),
    display_labels=("not_duplicate", "duplicate"),
    metrics=("f1", "accuracy"),
    skip_malformed=True,
)

_STSB = _task(
    "stsb",
    "STS-B",
    "Semantic Textual Similarity Benchmark: similarity score from 0 to 5.",
    _standard("sentence1", "sentence2", "score"),
    labels=None,
    metrics=("pearson", "spearman"),
    value_range=(0.0, 5.0),
)

_MNLI = _task(
    "mnli",
    "MNLI",
    "Multi-Genre NLI: does the premise entail, contradict or not decide the hypothesis?",
    _mnli_splits(),
    # The order GLUE's own baseline and transformers' MnliProcessor use.
    labels=("contradiction", "entailment", "neutral"),
    submission_files={
        "test": "MNLI-m.tsv",
        "test_mismatched": "MNLI-mm.tsv",
        "diagnostic": "AX.tsv",
    },
)

_QNLI = _task(
    "qnli",
    "QNLI",
    "Question NLI (v2): does the sentence contain the answer to the question?",
    _standard("question", "sentence", "label"),
    labels=_TWO_WAY_NLI,
)

_RTE = _task(
    "rte",
    "RTE",
    "Recognizing Textual Entailment: does sentence 1 entail sentence 2?",
    _standard("sentence1", "sentence2", "label"),
    labels=_TWO_WAY_NLI,
)

_WNLI = _task(
    "wnli",
    "WNLI",
    "Winograd NLI: does the sentence with the pronoun replaced follow?",
    _standard("sentence1", "sentence2", "label"),
    display_labels=("not_entailment", "entailment"),
)

#: All nine GLUE tasks by their short lower-case name.
TASKS: dict[str, GlueTask] = {
    t.name: t for t in (_COLA, _SST2, _MRPC, _QQP, _STSB, _MNLI, _QNLI, _RTE, _WNLI)
}

_ALIASES = {
    "sst-2": "sst2",
    "sts-b": "stsb",
    "sts": "stsb",
    "mnli-m": "mnli",
    "mnli_matched": "mnli",
}


def get_task(name: str | GlueTask) -> GlueTask:
    """Look a task up by name (case-insensitive; ``SST-2``/``STS-B`` spellings accepted)."""
    if isinstance(name, GlueTask):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise KeyError(f"unknown GLUE task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]
