"""The models a worker process holds in memory, by algorithm.

The worker's parent process loads every model it serves before it forks its pool, so
the children share the models' memory pages; it then keeps that set in step with the
registry (``workers/rollout.py``). A child asked for a model it does not hold (a
version registered since its parent forked it) loads it itself rather than fail the
request: no request gets an error because a worker does not yet hold a model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shared.db.engine import session_scope
from shared.registry import AlgorithmInfo, get_manifest
from workers.model_cache import ModelCache
from workers.model_files import load_estimator
from workers.predictors import OnnxPredictor, Predictor, SklearnPredictor
from workers.schema import InputSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    algorithm: AlgorithmInfo
    schema: InputSchema
    predictor: Predictor
    classes: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.algorithm.kind


def load_model(algorithm: AlgorithmInfo, cache: ModelCache) -> LoadedModel:
    """Build a servable model from the registry's manifest and the (hash-checked) file."""
    with session_scope() as session:
        manifest = get_manifest(session, algorithm_id=algorithm.id)
    assert algorithm.serving_sha256 is not None, "a registered model has a serving file"
    path = cache.path(algorithm.serving_sha256)
    schema = InputSchema.from_dict(manifest["schema"])
    classes = tuple(manifest.get("classes", ()))
    predictor: Predictor
    if algorithm.runtime == "onnx":
        predictor = OnnxPredictor(path, manifest["onnx"], kind=algorithm.kind, classes=classes)
    else:
        estimator = load_estimator(path.read_bytes(), manifest["source_format"])
        if "n_jobs" in estimator.get_params():
            # One process per core serves: parallel prediction only adds overhead here.
            estimator.set_params(n_jobs=1)
        predictor = SklearnPredictor(estimator, schema, kind=algorithm.kind)
    return LoadedModel(algorithm, schema, predictor, classes)


class ModelStore:
    """The loaded models of this process, by algorithm id."""

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache
        self._models: dict[int, LoadedModel] = {}

    def get(self, algorithm: AlgorithmInfo) -> LoadedModel:
        held = self._models.get(algorithm.id)
        if held is not None and held.algorithm.serving_sha256 == algorithm.serving_sha256:
            return held
        started = time.perf_counter()
        model = self._models[algorithm.id] = load_model(algorithm, self.cache)
        log.info(
            "loaded %s %s %s on demand in %.2fs (shared with the pool once it is recycled)",
            algorithm.endpoint,
            algorithm.name,
            algorithm.version,
            time.perf_counter() - started,
        )
        return model

    def sync(self, algorithms: Iterable[AlgorithmInfo]) -> tuple[list[int], list[int]]:
        """Hold exactly these algorithms: load the missing ones, drop the others.

        A model that cannot be loaded (its file fails its hash, say) is logged and left
        out; the rest are served. Returns (loaded, dropped) algorithm ids.
        """
        wanted = {a.id: a for a in algorithms}
        dropped = [i for i in self._models if i not in wanted]
        for algorithm_id in dropped:
            del self._models[algorithm_id]
        loaded = []
        for algorithm in wanted.values():
            held = self._models.get(algorithm.id)
            if held is not None and held.algorithm.serving_sha256 == algorithm.serving_sha256:
                self._models[algorithm.id] = LoadedModel(
                    algorithm, held.schema, held.predictor, held.classes
                )
                continue
            started = time.perf_counter()
            try:
                self._models[algorithm.id] = load_model(algorithm, self.cache)
            except Exception:  # one bad model must not stop the others from being served
                log.critical(
                    "cannot load %s %s %s (sha256 %s...); not serving it",
                    algorithm.endpoint,
                    algorithm.name,
                    algorithm.version,
                    (algorithm.serving_sha256 or "")[:12],
                    exc_info=True,
                )
                continue
            loaded.append(algorithm.id)
            log.info(
                "loaded %s %s %s (%s, sha256 %s...) in %.2fs",
                algorithm.endpoint,
                algorithm.name,
                algorithm.version,
                algorithm.runtime,
                (algorithm.artifact_sha256 or "")[:12],
                time.perf_counter() - started,
            )
        return loaded, dropped

    def held_ids(self) -> list[int]:
        return sorted(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter(self._models.values())
