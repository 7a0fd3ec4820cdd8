"""The built-in example: the tutorial's two income classifiers, trained on the UCI Adult
data and registered like any user's model (``workers/registration.py``).

As in the tutorial: a 70/30 split with random_state=1234, a random forest and extra
trees of 100 trees each. Unlike it: each model is a scikit-learn pipeline that encodes
its own categories, the forests have a fixed random state, and the registration sample
carries every category of the data set and the domain's numeric bounds, so requests are
validated as strictly as before. Only this module knows the Adult data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from shared.contracts import DEFAULT_ENDPOINT
from shared.errors import ArtifactError
from shared.registry import AlgorithmInfo
from shared.settings import PROJECT_ROOT
from workers.bundles import Bundle, bundle_dir
from workers.model_cache import file_sha256
from workers.model_files import dump_estimator
from workers.registration import build_bundle, publish

log = logging.getLogger(__name__)

ADULT_DATA = PROJECT_ROOT / "data" / "adult" / "adult.data"
TARGET = "income"
# The UCI file has no header; this is its column order.
ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    TARGET,
)
# What a real person's record can hold: values outside the training range but inside
# these are accepted (the trees treat them like the nearest value they saw).
NUMERIC_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "age": (0, 130),
    "fnlwgt": (0, 1e8),
    "education-num": (1, 16),
    "capital-gain": (0, 1e7),
    "capital-loss": (0, 1e7),
    "hours-per-week": (0, 168),
}
SPLIT_TEST_SIZE = 0.3
SPLIT_RANDOM_STATE = 1234
FOREST_RANDOM_STATE = 1234
SAMPLE_ROWS = 500


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    version: str
    initial_status: str
    description: str
    make_estimator: Callable[[], Any]


TUTORIAL_ALGORITHMS = (
    AlgorithmSpec(
        "random forest",
        "0.0.1",
        "production",
        "Random Forest with simple pre- and post-processing",
        lambda: RandomForestClassifier(n_estimators=100, random_state=FOREST_RANDOM_STATE),
    ),
    AlgorithmSpec(
        "extra trees",
        "0.0.1",
        "testing",
        "Extra Trees with simple pre- and post-processing",
        lambda: ExtraTreesClassifier(n_estimators=100, random_state=FOREST_RANDOM_STATE),
    ),
)


def read_adult(path: str | Path) -> pd.DataFrame:
    """The UCI Adult file as a frame: stripped strings, '?' kept as a category."""
    return pd.read_csv(
        path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True, na_filter=False
    )


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def everything(self) -> pd.DataFrame:
        return pd.concat([self.train, self.test], ignore_index=True)


def split_adult(path: Path = ADULT_DATA) -> Split:
    """The tutorial's split: 30% held out, random_state=1234."""
    frame = read_adult(path)
    train, test = train_test_split(
        frame, test_size=SPLIT_TEST_SIZE, random_state=SPLIT_RANDOM_STATE
    )
    return Split(train.reset_index(drop=True), test.reset_index(drop=True))


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != TARGET and not pd.api.types.is_numeric_dtype(frame[c])]


def income_pipeline(classifier: Any, categorical: list[str]) -> Pipeline:
    """Categories as their index among the training ones (an unseen one as -1), numbers
    as they are, then the classifier: the tutorial's preprocessing, inside the model."""
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    prepare = ColumnTransformer([("categories", encode, categorical)], remainder="passthrough")
    return Pipeline([("prepare", prepare), ("classify", classifier)])


def train_algorithm(
    spec: AlgorithmSpec,
    split: Split,
    artifacts_dir: Path,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    data_path: Path = ADULT_DATA,
    version: str | None = None,
) -> Bundle:
    """Fit one pipeline, evaluate it on the held-out rows, build and save its bundle."""
    features = split.train.drop(columns=[TARGET])
    categorical = categorical_columns(split.train)
    pipeline = income_pipeline(spec.make_estimator(), categorical)
    pipeline.set_params(classify__n_jobs=-1)
    pipeline.fit(features, split.train[TARGET].to_numpy())
    pipeline.set_params(classify__n_jobs=None)
    accuracy = float(
        np.mean(pipeline.predict(split.test.drop(columns=[TARGET])) == split.test[TARGET])
    )
    everything = split.everything
    bundle = build_bundle(
        pipeline,
        source=dump_estimator(pipeline),
        source_format="pickle",
        sample=features.sample(SAMPLE_ROWS, random_state=0).reset_index(drop=True),
        endpoint=endpoint,
        name=spec.name,
        version=version or spec.version,
        description=spec.description,
        refuse_missing=True,
        bounds=NUMERIC_BOUNDS,
        # A record may hold any category of the data set (Holand-Netherlands appears in
        # the held-out rows only); the model encodes one it did not see as unknown.
        categories={c: sorted(everything[c].unique()) for c in categorical},
        metrics={
            "accuracy": round(accuracy, 4),
            "train_rows": len(split.train),
            "test_rows": len(split.test),
            "data": str(data_path),
            "data_sha256": file_sha256(data_path),
        },
    )
    bundle.save(bundle_dir(artifacts_dir, endpoint, spec.name, bundle.manifest["version"]))
    log.info("trained %s %s: held-out accuracy %.4f", spec.name, spec.version, accuracy)
    return bundle


def train_missing(
    artifacts_dir: Path,
    *,
    force: bool = False,
    data_path: Path = ADULT_DATA,
    version: str | None = None,
    on_start: Callable[[AlgorithmSpec], None] | None = None,
) -> list[tuple[AlgorithmSpec, Bundle, bool]]:
    """Train every tutorial algorithm whose bundle is missing or broken (all, with force).

    Returns each with its bundle and whether it was trained now.
    """
    results: list[tuple[AlgorithmSpec, Bundle, bool]] = []
    split: Split | None = None
    for spec in TUTORIAL_ALGORITHMS:
        folder = bundle_dir(artifacts_dir, DEFAULT_ENDPOINT, spec.name, version or spec.version)
        if not force:
            try:
                results.append((spec, Bundle.load(folder), False))
                continue
            except ArtifactError:
                pass
        if on_start:
            on_start(spec)
        split = split or split_adult(data_path)
        bundle = train_algorithm(spec, split, artifacts_dir, data_path=data_path, version=version)
        results.append((spec, bundle, True))
    holdout = holdout_path(artifacts_dir)
    if force or not holdout.is_file():
        split = split or split_adult(data_path)
        split.test.to_csv(holdout, index=False)
    return results


def register_builtin(
    trained: list[tuple[AlgorithmSpec, Bundle, bool]], *, created_by: str
) -> list[tuple[AlgorithmInfo, bool]]:
    """Publish the built-in models, each with its tutorial status when it is new."""
    return [
        publish(
            bundle, status=spec.initial_status, created_by=created_by, reason="built-in example"
        )
        for spec, bundle, _ in trained
    ]


def holdout_path(artifacts_dir: Path) -> Path:
    """The held-out rows (with their true label), as CSV with a header: what `mlq demo`
    scores and labels, read without the machine-learning stack."""
    return artifacts_dir / DEFAULT_ENDPOINT / "holdout.csv"
