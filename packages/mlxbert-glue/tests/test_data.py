"""The readers reproduce the official GLUE row counts and handle every format quirk."""

from __future__ import annotations

import numpy as np
import pytest

from mlxbert_glue import TASKS, load_task
from mlxbert_glue.data import split_path

# (task, split, data subfolder or None, official row count, label counts or None)
OFFICIAL = [
    ("cola", "train", None, 8551, [2528, 6023]),
    ("cola", "dev", None, 1043, [322, 721]),
    ("cola", "test", None, 1063, None),
    ("sst2", "train", None, 67349, [29780, 37569]),
    ("sst2", "dev", None, 872, [428, 444]),
    ("sst2", "test", None, 1821, None),
    ("mrpc", "train", None, 3668, None),
    ("mrpc", "dev", None, 408, None),
    ("mrpc", "test", None, 1725, None),
    # SentEval-tokenized MRPC: train is one row short of the official 3,668 (PROVENANCE).
    ("mrpc", "train", "MRPC/senteval_tokenized", 3667, None),
    ("mrpc", "dev", "MRPC/senteval_tokenized", 408, None),
    ("mrpc", "test", "MRPC/senteval_tokenized", 1725, None),
    ("stsb", "train", None, 5749, None),
    ("stsb", "dev", None, 1500, None),
    ("stsb", "test", None, 1379, None),
    ("qnli", "dev", None, 5463, [2702, 2761]),
    ("qnli", "test", None, 5463, None),
    ("rte", "train", None, 2490, None),
    ("rte", "dev", None, 277, None),
    ("rte", "test", None, 3000, None),
    ("wnli", "train", None, 635, None),
    ("wnli", "dev", None, 71, None),
    ("wnli", "test", None, 146, None),
    ("mnli", "diagnostic", None, 1104, None),
]


@pytest.mark.parametrize(("task", "split", "sub", "rows", "counts"), OFFICIAL)
def test_official_row_counts(glue_dir, task, split, sub, rows, counts):
    ex = load_task(task, glue_dir / sub if sub else glue_dir, split)
    assert len(ex) == rows
    assert len(ex.ids) == rows and len(set(ex.ids)) == rows
    t = TASKS[task]
    assert (ex.pairs is not None) == t.is_pair
    if split in ("test", "diagnostic"):
        assert ex.labels is None
    else:
        assert ex.labels is not None and len(ex.labels) == rows
    if counts is not None:
        assert np.bincount(ex.labels).tolist() == counts


def test_quirks(glue_dir):
    # CoLA train/dev are headerless: the first data row is a sentence, not a header.
    cola = load_task("cola", glue_dir, "train")
    assert cola.texts[0].startswith("Our friends won't buy this analysis")
    assert load_task("cola", glue_dir, "test").ids[:2] == ["0", "1"]
    # MRPC: the BOM does not leak into the header; quotes survive (QUOTE_NONE).
    mrpc = load_task("mrpc", glue_dir, "dev")
    assert mrpc.labels[0] == 1 and mrpc.pairs[0].startswith('"The foodservice pie business')
    # STS-B: float scores in [0, 5].
    stsb = load_task("stsb", glue_dir, "dev")
    assert stsb.labels.dtype == np.float32
    assert stsb.labels.min() >= 0 and stsb.labels.max() <= 5 and stsb.labels[1] == 4.75
    # RTE: string labels mapped through the task's label list.
    rte = load_task("rte", glue_dir, "dev")
    assert TASKS["rte"].labels[rte.labels[0]] == "not_entailment"
    # SST-2: trailing spaces are stripped.
    assert not load_task("sst2", glue_dir, "dev").texts[0].endswith(" ")
    # STS-B test ids come from the index column.
    assert load_task("stsb", glue_dir, "test").ids[-1] == "1378"


def test_task_folder_may_be_passed_directly(glue_dir):
    assert len(load_task("RTE", glue_dir / "RTE", "dev")) == 277
    assert len(load_task("SST-2", glue_dir, "dev")) == 872


@pytest.mark.parametrize(("task", "split"), [("mnli", "train"), ("qqp", "dev"), ("qnli", "train")])
def test_missing_files_name_the_expected_file(glue_dir, task, split):
    with pytest.raises(FileNotFoundError) as err:
        load_task(task, glue_dir, split)
    assert str(split_path(task, glue_dir, split)) in str(err.value)
    assert TASKS[task].dir_name in str(err.value)


def test_bad_input_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown GLUE task"):
        load_task("squad", tmp_path, "train")
    with pytest.raises(ValueError, match="no split"):
        load_task("rte", tmp_path, "dev_mismatched")
    rte = tmp_path / "RTE"
    rte.mkdir()
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match="not one of"):
        load_task("rte", tmp_path, "dev")
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\n")
    with pytest.raises(ValueError, match="QUOTE_NONE"):
        load_task("rte", tmp_path, "dev")
    (rte / "dev.tsv").write_text("idx\ts1\ts2\tlabel\n0\ta\tb\tentailment\n")
    with pytest.raises(ValueError, match="expected a column named 'sentence1'"):
        load_task("rte", tmp_path, "dev")


def test_synthetic_mnli_and_qqp_layouts(tmp_path):
    """MNLI/QQP are absent here: check their layouts on files in the official format."""
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    head = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
        "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
    )
    rows = [
        "0\t1\t1e\tfic\t(a)\t(b)\t(A)\t(B)\tA man.\tA person.\tentailment\tentailment\n",
        '1\t2\t2c\tfic\t(a)\t(b)\t(A)\t(B)\tSay "hi.\tNo one.\tneutral\tcontradiction\n',
    ]
    (mnli / "dev_mismatched.tsv").write_text(head + "".join(rows))
    ex = load_task("mnli", tmp_path, "dev_mismatched")
    assert ex.labels.tolist() == [1, 0] and ex.texts[1] == 'Say "hi.'
    qqp = tmp_path / "QQP"
    qqp.mkdir()
    (qqp / "dev.tsv").write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "5\t1\t2\tWhy?\tHow?\t0\n6\t3\tbroken row\n7\t4\t5\tWho?\tWhom?\t1\n"
    )
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        ex = load_task("qqp", tmp_path, "dev")
    assert ex.ids == ["5", "7"] and ex.labels.tolist() == [0, 1]
