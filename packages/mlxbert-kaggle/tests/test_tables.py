import gzip

import numpy as np
import pandas as pd
import pytest

from mlxbert_kaggle import InputError, read_table, write_table


def test_crlf_quoted_commas_and_empty_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        b'Id,Name,Age,Cabin\r\n1,"Braund, Mr. Owen",22,\r\n2,"Cumings, Mrs.",38,C85\r\n'
    )
    frame = read_table(path)
    assert frame["Name"].tolist() == ["Braund, Mr. Owen", "Cumings, Mrs."]
    assert frame["Age"].dtype.kind == "i"
    assert pd.isna(frame.loc[0, "Cabin"]) and frame.loc[1, "Cabin"] == "C85"


def test_na_is_a_category_in_text_columns_and_missing_in_numeric_ones(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("Id,Alley,LotFrontage\n1,NA,65\n2,Grvl,NA\n3,Pave,80.5\n")
    frame = read_table(path)
    assert frame["Alley"].tolist() == ["NA", "Grvl", "Pave"]
    assert frame["LotFrontage"].dtype.kind == "f"
    assert np.isnan(frame.loc[1, "LotFrontage"]) and frame.loc[2, "LotFrontage"] == 80.5


def test_newlines_inside_quoted_fields_and_bom(tmp_path):
    path = tmp_path / "n.csv"
    path.write_bytes('\ufeffid,text\n1,"line one\nline two"\n2,plain\n'.encode())
    frame = read_table(path)
    assert list(frame.columns) == ["id", "text"]
    assert frame["text"].tolist() == ["line one\nline two", "plain"]


def test_keep_text_keeps_exact_ids(tmp_path):
    path = tmp_path / "i.csv"
    path.write_text("code,x\n007,1\n010,2\n")
    assert read_table(path, keep_text=["code"])["code"].tolist() == ["007", "010"]
    assert read_table(path)["code"].tolist() == [7, 10]


def test_tsv_gz_keeps_bare_quotes(tmp_path):
    path = tmp_path / "s.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('sentence\tlabel\nhe said "hi\t1\nok "quoted" text\t0\n')
    frame = read_table(path)
    assert frame["sentence"].tolist() == ['he said "hi', 'ok "quoted" text']


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"a,b\n", "no data rows"),
        (b"a,b\n1,caf\xe9\n", "not UTF-8"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_table(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_table(tmp_path)


def test_write_table_is_atomic_and_round_trips(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "y": [1, 0]})
    out = write_table(frame, tmp_path / "sub" / "p.csv")
    assert out.read_text() == "id,y\na,1\nb,0\n"
    assert [p.name for p in out.parent.iterdir()] == ["p.csv"]  # no temp file left


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"text": ["x", "y"], "label": [1, 0]})
    write_table(frame, tmp_path / "f.parquet")
    back = read_table(tmp_path / "f.parquet")
    assert back["text"].tolist() == ["x", "y"] and back["label"].tolist() == [1, 0]


def test_real_kaggle_quirks(kaggle_data):
    titanic = read_table(kaggle_data / "titanic" / "train.csv")
    assert titanic.shape == (891, 12)
    assert titanic.loc[0, "Name"] == "Braund, Mr. Owen Harris"
    assert titanic["Age"].isna().sum() == 177 and titanic["Cabin"].isna().sum() == 687
    house = read_table(kaggle_data / "house-prices-advanced-regression-techniques" / "train.csv")
    assert house.shape == (1460, 81)
    assert (house["Alley"] == "NA").sum() == 1369  # a category, not missing
    assert house["LotFrontage"].isna().sum() == 259  # missing in a numeric column
    test = read_table(kaggle_data / "house-prices-advanced-regression-techniques" / "test.csv")
    assert test["GarageCars"].dtype.kind == "f" and test["GarageCars"].isna().sum() == 1
    tweets = read_table(kaggle_data / "nlp-getting-started" / "train.csv")
    assert len(tweets) == 7613
    assert tweets["keyword"].isna().sum() == 61 and tweets["location"].isna().sum() == 2533
    assert tweets["target"].value_counts().to_dict() == {0: 4342, 1: 3271}
