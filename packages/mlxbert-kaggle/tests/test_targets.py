import numpy as np
import pandas as pd
import pytest

from mlxbert_kaggle import InputError, TargetSpec


def frame(**cols):
    return pd.DataFrame(cols)


@pytest.mark.parametrize(
    "values, task",
    [
        ([0, 1, 1, 0], "binary"),
        (["yes", "no", "no", "yes"], "binary"),
        (["a", "b", "c", "a"], "multiclass"),
        ([1, 2, 3, 1, 2, 3, 1, 2], "multiclass"),
        ([1.5, 2.25, 3.0, 0.1], "regression"),
        (list(range(100)), "regression"),
    ],
)
def test_inferred_task(values, task):
    assert TargetSpec.infer(frame(y=values), ["y"]).task == task


def test_binary_encode_decode_keeps_label_text():
    df = frame(y=[1.0, 0.0, np.nan, 1.0])
    spec = TargetSpec.infer(df, ["y"])
    clean = spec.clean(df)
    assert spec.dropped_rows == 1 and len(clean) == 3
    assert spec.labels == ["0", "1"]
    assert spec.encode(clean).tolist() == [1.0, 0.0, 1.0]
    assert spec.decode(np.array([0.9, 0.2]))["y"].tolist() == ["1", "0"]


def test_multiclass_unseen_label_is_an_error():
    spec = TargetSpec.infer(frame(y=["a", "b", "c"]), ["y"])
    with pytest.raises(InputError, match="not seen in training: 'd'"):
        spec.encode(frame(y=["a", "d"]), "valid.csv")


def test_multilabel_from_delimited_column():
    df = frame(tags=["x|y", "y", "z|x"])
    spec = TargetSpec.infer(df, ["tags"], label_sep="|")
    assert spec.task == "multilabel" and spec.labels == ["x", "y", "z"]
    y = spec.encode(df)
    assert y.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert spec.decode(y)["tags"].tolist() == ["x|y", "y", "x|z"]


def test_multilabel_from_zero_one_columns_and_multi_regression():
    df = frame(a=[0, 1, 1], b=[1, 0, 1])
    spec = TargetSpec.infer(df, ["a", "b"])
    assert spec.task == "multilabel" and spec.labels == ["a", "b"]
    assert spec.decode(np.array([[0.7, 0.1]])).to_dict("records") == [{"a": 1, "b": 0}]
    spec = TargetSpec.infer(frame(a=[0.5, 1.5, 2.0], b=[1.0, 3.0, 2.5]), ["a", "b"])
    assert spec.task == "regression" and spec.num_outputs == 2


def test_ordinal_only_when_asked_and_sorted_numerically():
    df = frame(stars=[10, 2, 1, 2])
    spec = TargetSpec.infer(df, ["stars"], task="ordinal")
    assert spec.task == "ordinal" and spec.labels == ["1", "2", "10"]


def test_log1p_transform_round_trip():
    df = frame(price=[100000.0, 250000.0])
    spec = TargetSpec.infer(df, ["price"], transform="log1p")
    y = spec.encode(df)
    assert np.allclose(y[:, 0], np.log1p([100000.0, 250000.0]))
    assert np.allclose(spec.decode(y)["price"], [100000.0, 250000.0], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"columns": ["nope"]}, "no column 'nope'"),
        ({"columns": ["y"], "task": "binary"}, "3 distinct values"),
        ({"columns": ["y"], "task": "wrong"}, "unknown task"),
        ({"columns": ["y"], "task": "multiclass", "transform": "log1p"}, "needs a regression"),
        ({"columns": ["y"], "transform": "log1p"}, "non-numeric"),
        ({"columns": ["c"]}, "single value"),
        ({"columns": ["m"]}, "every value"),
    ],
)
def test_bad_targets(kwargs, message):
    df = frame(y=["a", "b", "c"], c=[1, 1, 1], m=[np.nan] * 3)
    columns = kwargs.pop("columns")
    with pytest.raises(InputError, match=message):
        TargetSpec.infer(df, columns, **kwargs)


def test_round_trip_dict():
    spec = TargetSpec(["y"], "multilabel", labels=["a"], label_sep=",")
    assert TargetSpec.from_dict(spec.to_dict()) == spec


def test_empty_cell_of_a_delimited_multilabel_column_means_no_labels():
    df = pd.DataFrame({"tags": ["a|b", None, "b", ""], "text": list("wxyz")})
    spec = TargetSpec.infer(df, ["tags"], label_sep="|")
    cleaned = spec.clean(df)
    assert spec.dropped_rows == 0 and len(cleaned) == 4
    np.testing.assert_array_equal(spec.encode(cleaned), [[1, 1], [0, 0], [0, 1], [0, 0]])
    assert spec.decode(np.array([[0.9, 0.1], [0.2, 0.3]]))["tags"].tolist() == ["a", ""]
