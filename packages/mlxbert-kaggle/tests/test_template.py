import numpy as np
import pandas as pd
import pytest

from mlxbert_kaggle import InputError, TextTemplate, default_template, format_value


@pytest.mark.parametrize(
    "value, text",
    [
        (22.0, "22"),
        (7.25, "7.25"),
        (71.2833, "71.28"),
        (0.4167, "0.4167"),
        (123456.7, "123457"),
        (0.0000123, "0.0000123"),
        (np.int64(3), "3"),
        (float("nan"), "missing"),
        (None, "missing"),
        ("  male ", "male"),
        ("", "missing"),
        (True, "yes"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_tabular_and_text_columns():
    t = TextTemplate(columns=["Age", "Cabin"], text_columns=["review"])
    row = {"Age": 22.0, "Cabin": np.nan, "review": "fine"}
    assert t.render_row(row) == "Age: 22 | Cabin: missing | review: fine"
    assert TextTemplate(text_columns=["review"]).render_row(row) == "fine"


def test_format_string_and_url_decode():
    t = TextTemplate(format="{keyword} | {text}", transforms={"keyword": ["url_decode"]})
    assert t.columns == ["keyword", "text"]
    assert t.render_row({"keyword": "body%20bags", "text": "hi"}) == "body bags | hi"
    assert t.render_row({"keyword": None, "text": "hi"}) == "missing | hi"


def test_round_trip_and_describe():
    t = TextTemplate(columns=["a"], text_columns=["b"], transforms={"b": ["lower"]})
    assert TextTemplate.from_dict(t.to_dict()) == t
    assert t.describe() == "a: {a} | b: {b}"


def test_missing_columns_listed():
    frame = pd.DataFrame({"x": [1], "y": [2]})
    with pytest.raises(InputError, match=r"no column 'Age'.*available columns: 'x', 'y'"):
        TextTemplate(columns=["Age"]).render(frame)


def test_bad_templates():
    with pytest.raises(InputError, match="names no column"):
        TextTemplate(format="no fields")
    with pytest.raises(InputError, match="uses no column"):
        TextTemplate()
    with pytest.raises(InputError, match="unknown transform"):
        TextTemplate(columns=["a"], transforms={"a": ["reverse"]})


def test_default_template_skips_targets_and_ids():
    frame = pd.DataFrame({"PassengerId": [1, 2], "Age": [3, 4], "Survived": [0, 1]})
    t = default_template(frame, targets=["Survived"])
    assert t.columns == ["Age"]
    t = default_template(frame, targets=["Survived"], text_columns=["Age"])
    assert t.columns == [] and t.text_columns == ["Age"]
