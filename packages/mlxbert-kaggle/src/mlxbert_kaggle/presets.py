"""Kaggle competition presets: which files, columns, template, task, metric and target
transform each competition needs, so ``mlxbert kaggle run PRESET --data-dir DIR`` goes from
the downloaded files to a validated ``submission.csv``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class KagglePreset:
    """A competition's set-up.

    ``folder``: the competition's usual folder name (``--data-dir`` may point at it or at its
    parent); ``features``/``text``/``template``: the table -> text rendering; ``metric``: the
    competition's metric (also used for early stopping); ``train_defaults``: FitConfig values.
    """

    name: str
    competition: str
    folder: str
    target: str
    id_col: str
    sample_submission: str
    metric: str
    description: str
    task: str = "auto"
    features: tuple[str, ...] | None = None
    text: tuple[str, ...] = ()
    template: str | None = None
    transforms: dict[str, list[str]] = field(default_factory=dict)
    target_transform: str | None = None
    train_defaults: dict[str, Any] = field(default_factory=dict)
    train_file: str = "train.csv"
    test_file: str = "test.csv"

    def locate(self, data_dir: str | Path) -> Path:
        """The folder holding the competition files (``data_dir`` or ``data_dir/folder``)."""
        base = Path(data_dir)
        for candidate in (base, base / self.folder, base / self.competition):
            if (candidate / self.train_file).is_file():
                missing = [
                    f
                    for f in (self.test_file, self.sample_submission)
                    if not (candidate / f).is_file()
                ]
                if missing:
                    raise InputError(f"{candidate} has {self.train_file} but not {missing}")
                return candidate
        raise InputError(
            f"no {self.train_file} for {self.name} in {base} or {base / self.folder}; download "
            f"it with `kaggle competitions download -c {self.competition}` and unzip it there"
        )


#: House-prices columns rendered as text: the strongest predictors of the sale price in the
#: Ames data (size, quality, age, location, garage, basement), which keeps the text within
#: 256 tokens; all 79 columns would be truncated.
HOUSE_FEATURES = (
    "OverallQual",
    "GrLivArea",
    "Neighborhood",
    "YearBuilt",
    "YearRemodAdd",
    "TotalBsmtSF",
    "1stFlrSF",
    "2ndFlrSF",
    "GarageCars",
    "GarageArea",
    "FullBath",
    "HalfBath",
    "TotRmsAbvGrd",
    "BedroomAbvGr",
    "KitchenQual",
    "ExterQual",
    "BsmtQual",
    "LotArea",
    "MSZoning",
    "BldgType",
    "HouseStyle",
    "OverallCond",
    "Fireplaces",
    "CentralAir",
    "SaleCondition",
    "Foundation",
)

#: Mean pooling over the tokens: how sentence encoders such as all-MiniLM-L6-v2 were trained
#: (their CLS vector and pooler are not), and a sound choice for any encoder.
_MEAN = {"pooling": "mean"}

PRESETS: dict[str, KagglePreset] = {
    "titanic": KagglePreset(
        name="titanic",
        competition="titanic",
        folder="titanic",
        target="Survived",
        id_col="PassengerId",
        sample_submission="gender_submission.csv",
        metric="accuracy",
        task="binary",
        features=("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Cabin", "Embarked", "Name"),
        description="Titanic survival (binary, accuracy) from the passenger table",
        train_defaults={"epochs": 4, "max_length": 96, "lr": 5e-5, "batch_size": 16, **_MEAN},
    ),
    "house-prices": KagglePreset(
        name="house-prices",
        competition="house-prices-advanced-regression-techniques",
        folder="house-prices-advanced-regression-techniques",
        target="SalePrice",
        id_col="Id",
        sample_submission="sample_submission.csv",
        metric="rmsle",
        task="regression",
        features=HOUSE_FEATURES,
        target_transform="log1p",
        description="Ames house prices (regression on log1p(SalePrice), RMSLE)",
        train_defaults={"epochs": 5, "max_length": 192, "lr": 1e-4, "batch_size": 16, **_MEAN},
    ),
    "nlp-disaster": KagglePreset(
        name="nlp-disaster",
        competition="nlp-getting-started",
        folder="nlp-getting-started",
        target="target",
        id_col="id",
        sample_submission="sample_submission.csv",
        metric="f1",
        task="binary",
        template="{keyword} | {text}",
        transforms={"keyword": ["url_decode"]},
        description="Disaster tweets (binary, F1) from keyword + text",
        train_defaults={"epochs": 3, "max_length": 80, "lr": 2e-5, "batch_size": 16, **_MEAN},
    ),
}


def get_preset(name: str) -> KagglePreset:
    key = name.strip().lower()
    aliases = {
        "house-prices-advanced-regression-techniques": "house-prices",
        "nlp-getting-started": "nlp-disaster",
        "disaster": "nlp-disaster",
    }
    key = aliases.get(key, key)
    if key not in PRESETS:
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[key]


__all__ = ["HOUSE_FEATURES", "PRESETS", "KagglePreset", "get_preset"]
