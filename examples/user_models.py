"""Models that are not the income classifier, fitted on data that ships with scikit-learn
or the repository: what the tests register as a user would."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from workers.training import ADULT_DATA, read_adult

RELATIONSHIP_FEATURES = ["age", "sex", "marital-status", "education", "hours-per-week"]


def iris(n_estimators: int = 20, seed: int = 0) -> tuple[Any, pd.DataFrame, pd.Series]:
    """A numeric-only classifier: three species from four measurements."""
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed)
    return (
        model.fit(features, target.map(dict(enumerate(load_iris().target_names)))),
        features,
        target,
    )


def relationship() -> tuple[Any, pd.DataFrame, pd.Series]:
    """A multiclass pipeline with categorical columns one-hot encoded: a person's
    relationship in their household (six classes) from the Adult data."""
    data = read_adult(ADULT_DATA).head(6000)
    features, target = data[RELATIONSHIP_FEATURES], data["relationship"]
    categorical = ["sex", "marital-status", "education"]
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
                        ("numbers", StandardScaler(), ["age", "hours-per-week"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=500)),
        ]
    )
    return model.fit(features, target), features, target


def diabetes() -> tuple[Any, pd.DataFrame, pd.Series]:
    """A regressor: disease progression a year on, from ten measurements."""
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = GradientBoostingRegressor(n_estimators=50, random_state=0)
    return model.fit(features, target), features, target


def log_scaled_iris() -> tuple[Any, pd.DataFrame, pd.Series]:
    """A pipeline skl2onnx cannot convert (a Python function inside): served by
    scikit-learn itself."""
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = Pipeline(
        [
            ("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
            ("classify", LogisticRegression(max_iter=500)),
        ]
    )
    return model.fit(features, target.astype(str)), features, target
