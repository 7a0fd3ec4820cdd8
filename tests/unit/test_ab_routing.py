"""Routing and scoring under an A/B test, with no broker and no database: the arms of a
split, a shadow test's control with its challenger beside it, a version named by id,
and a challenger that fails without touching the control's answers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from shared.ab.running import RunningTest
from shared.errors import NoAlgorithmError
from shared.registry import AlgorithmInfo
from shared.registry_cache import EndpointEntry, RegistryCache
from workers.model_store import LoadedModel
from workers.predictors import Prediction
from workers.routing import route_many
from workers.schema import Column, InputSchema
from workers.scoring import Item, score_items
from workers.shadow import ShadowAnswer


def algorithm(id_: int, version: str, status: str) -> AlgorithmInfo:
    return AlgorithmInfo(
        id_, "e", "forest", version, status, "", "t", f"sha{id_}", datetime.now(UTC),
        classes=("no", "yes"),
    )  # fmt: skip


CONTROL, CHALLENGER = algorithm(1, "1", "production"), algorithm(2, "2", "ab_testing")


def registry(mode: str | None) -> RegistryCache:
    test = RunningTest(9, 0.5, CONTROL.id, CHALLENGER.id, mode) if mode else None
    return RegistryCache(0, load=lambda _: EndpointEntry([CONTROL, CHALLENGER], test))


class Answering:
    """A model that answers "yes" to every record."""

    def predict(self, columns: dict[str, np.ndarray]) -> Prediction:
        return Prediction(labels=["yes"] * len(columns["x"]))


class Failing:
    def predict(self, columns: dict[str, np.ndarray]) -> Prediction:
        raise RuntimeError("the challenger's bug")


class Store:
    def __init__(self, predictors: dict[int, Any]) -> None:
        self.predictors = predictors

    def get(self, algorithm: AlgorithmInfo) -> LoadedModel:
        schema = InputSchema((Column("x", "number"),))
        return LoadedModel(algorithm, schema, self.predictors[algorithm.id], algorithm.classes)


ITEMS = [Item(f"r{i}", {"x": i}, f"r{i}") for i in range(200)]


def test_a_split_sends_each_key_to_one_arm() -> None:
    routes = route_many(registry("split"), endpoint="e", keys=[i.request_id for i in ITEMS])
    arms = Counter((r.ab_arm, r.algorithm.id, r.shadow) for r in routes)
    assert set(arms) == {("A", 1, None), ("B", 2, None)}
    assert 60 < arms[("B", 2, None)] < 140


def test_a_shadow_test_serves_the_control_with_the_challenger_beside_it() -> None:
    routes = route_many(registry("shadow"), endpoint="e", keys=["k1", "k2"])
    assert {(r.algorithm, r.ab_test_id, r.ab_arm, r.shadow) for r in routes} == {
        (CONTROL, 9, "A", CHALLENGER)
    }


def test_a_version_named_by_id_takes_no_part_in_the_test() -> None:
    routes = route_many(registry("split"), endpoint="e", keys=["k"] * 3, algorithm_id=2)
    assert {(r.algorithm.id, r.ab_test_id) for r in routes} == {(2, None)}
    with pytest.raises(NoAlgorithmError, match="no algorithm #5"):
        route_many(registry(None), endpoint="e", keys=["k"], algorithm_id=5)


@pytest.mark.parametrize("challenger", [Failing(), None])
def test_a_failing_challenger_leaves_the_control_s_answers_alone(challenger: Any) -> None:
    store = Store({1: Answering()} | ({2: challenger} if challenger else {}))  # None: not loaded
    shadows: list[ShadowAnswer] = []
    scored = score_items(store, registry("shadow"), ITEMS[:5], endpoint="e", shadows=shadows)  # type: ignore[arg-type]
    assert [(r["status"], r["label"]) for r, _ in scored] == [("OK", "yes")] * 5
    assert [s.result["status"] for s in shadows] == ["ERROR"] * 5
    assert {s.ab_test_id for s in shadows} == {9} and all(s.latency_ms >= 0 for s in shadows)


def test_shadow_answers_are_kept_only_when_asked_for() -> None:
    store = Store({1: Answering(), 2: Answering()})
    scored = score_items(store, registry("shadow"), ITEMS[:3], endpoint="e")  # type: ignore[arg-type]
    assert [r["algorithm"]["id"] for r, _ in scored] == [1, 1, 1]  # type: ignore[index]
