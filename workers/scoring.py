"""Scoring many records in one pass: route them (production algorithm, A/B arm or the
requested version), validate them against their model's schema, predict each model's
records together. A bad record gets its own error result; the rest are scored.

In a shadow test the control's records are scored a second time by the challenger,
whose answers are only kept (``shadows``), never returned and never allowed to fail.

Plain functions: single predictions, groups of them and batch chunks all come here; tests
call it with no broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from shared.contracts import PredictResult
from shared.errors import MlqError
from shared.registry import AlgorithmInfo
from shared.registry_cache import RegistryCache
from workers.model_store import LoadedModel, ModelStore
from workers.request_checks import size_error
from workers.results import InternalError, error_result, scored_results
from workers.routing import Route, route_many
from workers.shadow import ShadowAnswer

log = logging.getLogger(__name__)


class Item(NamedTuple):
    # A named tuple, not a frozen dataclass: a 5,000-record chunk makes 5,000 of them.
    request_id: str
    record: Any
    assignment_key: str  # which A/B arm; the request id unless the producer gave one


def score_items(
    store: ModelStore,
    registry: RegistryCache,
    items: Sequence[Item],
    *,
    endpoint: str,
    status: str | None = None,
    version: str | None = None,
    failure: MlqError | None = None,
    shadows: list[ShadowAnswer] | None = None,
    algorithm_id: int | None = None,
) -> list[tuple[PredictResult, Route | None]]:
    """A result and its route for every item, in order. Database errors propagate (the
    task is retried); anything else a record causes becomes its error result.

    With ``failure`` (a message given up as poison), nothing is scored: every record
    gets that error (or its own size error). ``shadows`` collects the challenger's
    answers of a shadow test (a caller that passes None writes none). ``algorithm_id``:
    every record goes to that version (see ``route_many``).
    """
    if failure is not None:
        return [(error_result(i.request_id, size_error(i.record) or failure), None) for i in items]
    routes: list[Route | None]
    selection_error: MlqError | None = None
    try:
        routes = list(
            route_many(
                registry,
                endpoint=endpoint,
                keys=[item.assignment_key for item in items],
                status=status,
                version=version,
                algorithm_id=algorithm_id,
            )
        )
    except MlqError as error:
        routes, selection_error = [None] * len(items), error
    results: dict[int, PredictResult] = {}
    # Too large or too deep: not scored, and under no A/B arm.
    for i, item in enumerate(items):
        if (refused := size_error(item.record)) is not None:
            results[i] = error_result(item.request_id, refused)
            routes[i] = None
    groups: dict[Route | None, list[int]] = {}
    if not results and routes and routes.count(routes[0]) == len(routes):
        groups[routes[0]] = list(range(len(items)))  # one route for all: most chunks
    else:
        for i, chosen in enumerate(routes):
            if i not in results:
                groups.setdefault(chosen, []).append(i)
    for chosen, positions in groups.items():
        group = items if len(positions) == len(items) else [items[i] for i in positions]
        if chosen is None:
            assert selection_error is not None
            scored = [error_result(item.request_id, selection_error) for item in group]
        else:
            started = time.perf_counter()
            scored = _score_group(store, chosen.algorithm, group)
            if chosen.shadow is not None and shadows is not None:
                control_ms = (time.perf_counter() - started) * 1000 / len(group)
                shadows.extend(_score_shadow(store, chosen, group, control_ms))
        results.update(zip(positions, scored, strict=True))
    return [(results[i], routes[i]) for i in range(len(items))]


def _score_shadow(
    store: ModelStore, chosen: Route, items: Sequence[Item], control_ms: float
) -> list[ShadowAnswer]:
    """The challenger's answers to the records the control just scored: whatever the
    challenger does, an answer each (its errors are the error guardrail's evidence)."""
    assert chosen.shadow is not None and chosen.ab_test_id is not None
    started = time.perf_counter()
    try:
        scored = _score_group(store, chosen.shadow, items)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        log.exception("shadow test %d: the challenger failed on a group", chosen.ab_test_id)
        scored = [error_result(item.request_id, InternalError(), chosen.shadow) for item in items]
    shadow_ms = (time.perf_counter() - started) * 1000 / len(items)
    return [ShadowAnswer(chosen.ab_test_id, result, shadow_ms, control_ms) for result in scored]


def _score_group(
    store: ModelStore, algorithm: AlgorithmInfo, items: Sequence[Item]
) -> list[PredictResult]:
    try:
        model = store.get(algorithm)
    except MlqError as error:
        return [error_result(item.request_id, error, algorithm) for item in items]
    if len(items) == 1:  # one record: plain Python validation is faster than columns
        item = items[0]
        try:
            columns = model.schema.columns_of([model.schema.validate(item.record)])
        except MlqError as error:
            return [error_result(item.request_id, error, algorithm)]
        return _predict(model, algorithm, [item.request_id], columns)
    chunk = model.schema.validate_many([item.record for item in items])
    results = {
        i: error_result(items[i].request_id, error, algorithm) for i, error in chunk.errors.items()
    }
    if chunk.positions:
        ids = [items[i].request_id for i in chunk.positions]
        scored = _predict(model, algorithm, ids, chunk.columns)
        results.update(zip(chunk.positions, scored, strict=True))
    return [results[i] for i in range(len(items))]


def _predict(
    model: LoadedModel, algorithm: AlgorithmInfo, ids: list[str], columns: dict[str, Any]
) -> list[PredictResult]:
    """Predict the rows together; if the model fails on them, row by row, so that the
    record that makes it fail gets the error and no other does. Results name
    ``algorithm`` as the registry says it is now (its status may have changed since the
    model was loaded)."""
    try:
        return scored_results(ids, algorithm, model.predictor.predict(columns))
    except (MlqError, SQLAlchemyError, SoftTimeLimitExceeded):
        raise
    except Exception:
        if len(ids) == 1:
            log.exception("request %s: the model failed on it", ids[0])
            return [error_result(ids[0], InternalError(), algorithm)]
    results = []
    for row, request_id in enumerate(ids):
        one = {name: values[row : row + 1] for name, values in columns.items()}
        results.extend(_predict(model, algorithm, [request_id], one))
    return results
