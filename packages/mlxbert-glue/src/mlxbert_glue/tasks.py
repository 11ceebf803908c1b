"""The nine GLUE tasks: files, columns, labels, metrics and submission names.

Every fact about the official GLUE distribution lives here, in one table, so the reader,
the evaluator and the submission writer cannot disagree about it. Column layouts follow the
files of the official ``glue_data`` folders (the output of GLUE's ``download_glue_data.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def _tsv(filename, text, pair, label, *, header=True, index=None, subdir=None) -> SplitLayout:
    return SplitLayout(filename, header, text, pair, label, index, subdir)


def _standard(text, pair, label, test_index="index", label_dev=None) -> dict[str, SplitLayout]:
    """train/dev/test with a header row; test is unlabeled and has an ``index`` column."""
    return {
        "train": _tsv("train.tsv", text, pair, label, index=test_index),
        "dev": _tsv("dev.tsv", text, pair, label_dev or label, index=test_index),
        "test": _tsv("test.tsv", text, pair, None, index=test_index),
    }


_COLA = GlueTask(
    name="cola",
    dir_name="CoLA",
    description="Corpus of Linguistic Acceptability: is the sentence grammatical?",
    # train/dev have NO header: source, label, original mark, sentence. test has one.
    splits={
        "train": _tsv("train.tsv", 3, None, 1, header=False),
        "dev": _tsv("dev.tsv", 3, None, 1, header=False),
        "test": _tsv("test.tsv", "sentence", None, None, index="index"),
    },
    labels=("0", "1"),
    display_labels=("unacceptable", "acceptable"),
    metrics=("matthews_corrcoef",),
    submission_files={"test": "CoLA.tsv"},
)

_SST2 = GlueTask(
    name="sst2",
    dir_name="SST-2",
    description="Stanford Sentiment Treebank: is the phrase positive?",
    splits={
        "train": _tsv("train.tsv", "sentence", None, "label"),
        "dev": _tsv("dev.tsv", "sentence", None, "label"),
        "test": _tsv("test.tsv", "sentence", None, None, index="index"),
    },
    labels=("0", "1"),
    display_labels=("negative", "positive"),
    metrics=("accuracy",),
    submission_files={"test": "SST-2.tsv"},
)

_MRPC = GlueTask(
    name="mrpc",
    dir_name="MRPC",
    description="Microsoft Research Paraphrase Corpus: are the sentences paraphrases?",
    splits={
        "train": _tsv("train.tsv", "#1 String", "#2 String", "Quality"),
        "dev": _tsv("dev.tsv", "#1 String", "#2 String", "Quality"),
        "test": _tsv("test.tsv", "#1 String", "#2 String", None, index="index"),
    },
    labels=("0", "1"),
    display_labels=("not_equivalent", "equivalent"),
    metrics=("f1", "accuracy"),
    submission_files={"test": "MRPC.tsv"},
)

_QQP = GlueTask(
    name="qqp",
    dir_name="QQP",
    description="Quora Question Pairs: are the questions duplicates?",
    splits={
        "train": _tsv("train.tsv", "question1", "question2", "is_duplicate", index="id"),
        "dev": _tsv("dev.tsv", "question1", "question2", "is_duplicate", index="id"),
        "test": _tsv("test.tsv", "question1", "question2", None, index="id"),
    },
    labels=("0", "1"),
    display_labels=("not_duplicate", "duplicate"),
    metrics=("f1", "accuracy"),
    submission_files={"test": "QQP.tsv"},
    skip_malformed=True,
)

_STSB = GlueTask(
    name="stsb",
    dir_name="STS-B",
    description="Semantic Textual Similarity Benchmark: similarity score from 0 to 5.",
    splits=_standard("sentence1", "sentence2", "score"),
    labels=None,
    display_labels=None,
    metrics=("pearson", "spearman"),
    submission_files={"test": "STS-B.tsv"},
    value_range=(0.0, 5.0),
)

_MNLI = GlueTask(
    name="mnli",
    dir_name="MNLI",
    description="Multi-Genre NLI: does the premise entail, contradict or not decide the hypothesis?",
    splits={
        "train": _tsv("train.tsv", "sentence1", "sentence2", "gold_label", index="index"),
        "dev": _tsv("dev_matched.tsv", "sentence1", "sentence2", "gold_label", index="index"),
        "dev_mismatched": _tsv(
            "dev_mismatched.tsv", "sentence1", "sentence2", "gold_label", index="index"
        ),
        "test": _tsv("test_matched.tsv", "sentence1", "sentence2", None, index="index"),
        "test_mismatched": _tsv(
            "test_mismatched.tsv", "sentence1", "sentence2", None, index="index"
        ),
        "diagnostic": _tsv(
            "diagnostic.tsv", "sentence1", "sentence2", None, index="index", subdir="diagnostic"
        ),
    },
    # The order GLUE's own baseline and transformers' MnliProcessor use.
    labels=("contradiction", "entailment", "neutral"),
    display_labels=("contradiction", "entailment", "neutral"),
    metrics=("accuracy",),
    submission_files={
        "test": "MNLI-m.tsv",
        "test_mismatched": "MNLI-mm.tsv",
        "diagnostic": "AX.tsv",
    },
)

_QNLI = GlueTask(
    name="qnli",
    dir_name="QNLI",
    description="Question NLI (v2): does the sentence contain the answer to the question?",
    splits=_standard("question", "sentence", "label"),
    labels=("entailment", "not_entailment"),
    display_labels=("entailment", "not_entailment"),
    metrics=("accuracy",),
    submission_files={"test": "QNLI.tsv"},
)

_RTE = GlueTask(
    name="rte",
    dir_name="RTE",
    description="Recognizing Textual Entailment: does sentence 1 entail sentence 2?",
    splits=_standard("sentence1", "sentence2", "label"),
    labels=("entailment", "not_entailment"),
    display_labels=("entailment", "not_entailment"),
    metrics=("accuracy",),
    submission_files={"test": "RTE.tsv"},
)

_WNLI = GlueTask(
    name="wnli",
    dir_name="WNLI",
    description="Winograd NLI: does the sentence with the pronoun replaced follow?",
    splits=_standard("sentence1", "sentence2", "label"),
    labels=("0", "1"),
    display_labels=("not_entailment", "entailment"),
    metrics=("accuracy",),
    submission_files={"test": "WNLI.tsv"},
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
