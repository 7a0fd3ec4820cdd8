"""Models held in memory by a worker.

The worker's parent process loads every artifact once, before it forks, so the pool's
children share the trees' memory pages instead of each holding a copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from shared.errors import ArtifactError
from workers.artifacts import MODEL_FILE, ONNX_FILE, Artifact, find_artifacts
from workers.features import FeatureSchema
from workers.onnx_model import OnnxPredictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model as a worker serves it: the converted ONNX model (the scikit-learn file is
    hash-checked but not held in memory), its feature schema and its classes."""

    artifact: Artifact
    schema: FeatureSchema
    predictor: OnnxPredictor
    classes: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.artifact.key

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(features)


def load_model(artifact: Artifact) -> LoadedModel:
    artifact.verify()
    return LoadedModel(
        artifact,
        FeatureSchema.from_dict(artifact.manifest["features"]),
        OnnxPredictor(artifact.folder / ONNX_FILE),
        tuple(artifact.manifest["classes"]),
    )


def load_estimator(artifact: Artifact) -> Any:
    """The scikit-learn estimator itself (for checks and retraining, not for serving)."""
    artifact.verify()
    return joblib.load(artifact.folder / MODEL_FILE)


class ModelStore:
    """The loaded models of this process, by (endpoint, name, version)."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], LoadedModel] = {}

    def load_all(self, artifacts_dir: Path) -> list[LoadedModel]:
        artifacts = list(find_artifacts(artifacts_dir))
        if not artifacts:
            raise ArtifactError(f"no model artifacts under {artifacts_dir}; run `mlq train` first")
        for artifact in artifacts:
            started = time.perf_counter()
            model = load_model(artifact)
            self._models[model.key] = model
            log.info(
                "loaded model %s %s (sha256 %s...) in %.2fs",
                model.key[1],
                model.key[2],
                artifact.sha256[:12],
                time.perf_counter() - started,
            )
        return list(self._models.values())

    def add(self, model: LoadedModel) -> None:
        self._models[model.key] = model

    def get(self, endpoint: str, name: str, version: str) -> LoadedModel:
        try:
            return self._models[(endpoint, name, version)]
        except KeyError:
            raise ArtifactError(
                f"this worker has no model for {endpoint}/{name} {version}: "
                "train it and restart the worker"
            ) from None

    def classes_by_endpoint(self) -> dict[str, frozenset[str]]:
        """The labels each endpoint's models can give (what feedback may say)."""
        classes: dict[str, set[str]] = {}
        for (endpoint, _, _), model in self._models.items():
            classes.setdefault(endpoint, set()).update(model.classes)
        return {endpoint: frozenset(labels) for endpoint, labels in classes.items()}

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter(self._models.values())
