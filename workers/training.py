"""Training the tutorial's two income classifiers and writing their artifacts.

As in the tutorial: the UCI Adult data, a 70/30 split with random_state=1234, a random
forest and extra trees of 100 trees each. Unlike it: the forests have a fixed random
state, '?' is really filled with the training mode, and the fitted feature schema is
stored in the manifest next to the model.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import ClassifierMixin
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.model_selection import train_test_split

from shared.contracts import DEFAULT_ENDPOINT
from shared.errors import ArtifactError
from shared.settings import PROJECT_ROOT
from workers.artifacts import (
    MANIFEST,
    MANIFEST_FORMAT,
    MODEL_FILE,
    ONNX_FILE,
    Artifact,
    artifact_dir,
    read_artifact,
    sha256_of,
)
from workers.features import TARGET, FeatureSchema, read_adult
from workers.onnx_model import (
    MAX_PROBABILITY_DIFFERENCE,
    TARGET_OPSET,
    OnnxPredictor,
    agreement,
    convert,
)

log = logging.getLogger(__name__)

ADULT_DATA = PROJECT_ROOT / "data" / "adult" / "adult.data"
SPLIT_TEST_SIZE = 0.3
SPLIT_RANDOM_STATE = 1234
FOREST_RANDOM_STATE = 1234


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    version: str
    initial_status: str
    description: str
    make_estimator: Callable[[], ClassifierMixin]


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


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


def train_algorithm(
    spec: AlgorithmSpec,
    split: Split,
    artifacts_dir: Path,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    data_path: Path = ADULT_DATA,
) -> Artifact:
    """Fit one algorithm, evaluate it on the held-out rows, and write its artifact."""
    # Categories of the whole file are valid input; the model encodes the training ones.
    schema = FeatureSchema.fit(split.train, domain=split.everything)
    estimator = spec.make_estimator()
    estimator.set_params(n_jobs=-1)
    estimator.fit(schema.transform(split.train), split.train[TARGET].to_numpy())
    # Serving runs one process per core: parallel predict_proba only adds overhead there.
    estimator.set_params(n_jobs=1)
    held_out = schema.transform(split.test)
    accuracy = float(np.mean(estimator.predict(held_out) == split.test[TARGET]))
    onnx_model = convert(estimator, held_out)
    onnx_check = agreement(estimator, OnnxPredictor(onnx_model), held_out)
    if (
        onnx_check["labels_agree"] < 1.0
        or onnx_check["max_abs_difference"] > MAX_PROBABILITY_DIFFERENCE
    ):
        raise ArtifactError(f"the ONNX conversion of {spec.name} disagrees with it: {onnx_check}")

    target = artifact_dir(artifacts_dir, endpoint, spec.name, spec.version)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        joblib.dump(estimator, staging / MODEL_FILE, compress=3)
        (staging / ONNX_FILE).write_bytes(onnx_model)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "endpoint": endpoint,
            "name": spec.name,
            "version": spec.version,
            "initial_status": spec.initial_status,
            "description": spec.description,
            "owner": "mlqueue",
            "code": repr(estimator),
            "classes": [str(c) for c in estimator.classes_],
            "files": {
                name: {
                    "sha256": sha256_of(staging / name),
                    "bytes": (staging / name).stat().st_size,
                }
                for name in (MODEL_FILE, ONNX_FILE)
            },
            "onnx": {**onnx_check, "opset": TARGET_OPSET},
            "libraries": library_versions(),
            "features": schema.to_dict(),
            "metrics": {
                "accuracy": round(accuracy, 4),
                "train_rows": len(split.train),
                "test_rows": len(split.test),
            },
            "training": {
                "data": _display_path(data_path),
                "data_sha256": sha256_of(data_path),
                "test_size": SPLIT_TEST_SIZE,
                "split_random_state": SPLIT_RANDOM_STATE,
            },
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        # Swap the whole folder at once so a worker never sees a model without its manifest.
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("trained %s %s: held-out accuracy %.4f", spec.name, spec.version, accuracy)
    return read_artifact(target)


def train_missing(
    artifacts_dir: Path,
    *,
    force: bool = False,
    data_path: Path = ADULT_DATA,
    on_start: Callable[[AlgorithmSpec], None] | None = None,
) -> list[tuple[Artifact, bool]]:
    """Train every tutorial algorithm whose artifact is missing or broken (all, with force).

    Returns each artifact with whether it was trained now.
    """
    results: list[tuple[Artifact, bool]] = []
    split: Split | None = None
    for spec in TUTORIAL_ALGORITHMS:
        folder = artifact_dir(artifacts_dir, DEFAULT_ENDPOINT, spec.name, spec.version)
        if not force and _is_intact(folder):
            results.append((read_artifact(folder), False))
            continue
        if on_start:
            on_start(spec)
        split = split or split_adult(data_path)
        results.append((train_algorithm(spec, split, artifacts_dir, data_path=data_path), True))
    holdout = holdout_path(artifacts_dir)
    if force or not holdout.is_file():
        split = split or split_adult(data_path)
        split.test.to_csv(holdout, index=False)
    return results


def holdout_path(artifacts_dir: Path) -> Path:
    """The held-out rows (with their true label), as CSV with a header: what `mlq demo`
    scores and labels, read without the machine-learning stack."""
    return artifacts_dir / DEFAULT_ENDPOINT / "holdout.csv"


def _is_intact(folder: Path) -> bool:
    try:
        read_artifact(folder).verify()
    except Exception:
        return False
    return True


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
