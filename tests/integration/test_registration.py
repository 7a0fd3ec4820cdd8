"""Registration is safe when several processes register the same models at once."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from sqlalchemy import func, select, text

from shared.db.engine import get_engine, session_scope
from shared.db.models import Endpoint, MLAlgorithm, MLAlgorithmStatus

pytestmark = pytest.mark.integration


def _register_all(bundles: list[tuple[str, Any]], barrier: Any) -> None:
    from workers.registration import publish

    barrier.wait()
    for status, bundle in bundles:
        publish(bundle, status=status, created_by="racer")


def test_eight_processes_registering_at_once_make_one_set_of_rows(
    database: str, builtin_bundles: list[tuple[str, Any]]
) -> None:
    with get_engine(database).begin() as connection:
        connection.execute(
            text(
                "TRUNCATE ml_request, ab_test, worker_model, ml_algorithm_status, "
                "ml_algorithm, endpoint RESTART IDENTITY CASCADE"
            )
        )
    get_engine(database).dispose()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    racers = [
        context.Process(target=_register_all, args=(builtin_bundles, barrier)) for _ in range(8)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(120)
    assert [racer.exitcode for racer in racers] == [0] * 8

    with session_scope() as session:

        def count(model: type, *where: object) -> int:
            query = select(func.count()).select_from(model).where(*where)
            return session.execute(query).scalar_one()

        algorithms = len(builtin_bundles)
        assert count(Endpoint) == 1
        assert count(MLAlgorithm) == algorithms
        assert count(MLAlgorithmStatus, MLAlgorithmStatus.active.is_(True)) == algorithms
        production = MLAlgorithmStatus.status == "production"
        assert count(MLAlgorithmStatus, MLAlgorithmStatus.active.is_(True), production) == 1
