"""Registration is safe when several workers start at the same moment."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from shared.db.engine import get_engine, session_scope
from shared.db.models import Endpoint, MLAlgorithm, MLAlgorithmStatus
from workers.artifacts import find_artifacts

pytestmark = pytest.mark.integration


def _register_all(artifacts_dir: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    from shared.db.engine import session_scope
    from shared.registry import register_artifacts
    from workers.artifacts import find_artifacts

    artifacts = list(find_artifacts(Path(artifacts_dir)))
    barrier.wait()
    with session_scope() as session:
        register_artifacts(session, artifacts, created_by="racer")


def test_eight_processes_registering_at_once_make_one_set_of_rows(
    database: str, artifacts_dir: Path
) -> None:
    with get_engine(database).begin() as connection:
        connection.execute(
            text(
                "TRUNCATE ml_request, ab_test, ml_algorithm_status, "
                "ml_algorithm, endpoint RESTART IDENTITY CASCADE"
            )
        )
    get_engine(database).dispose()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    racers = [
        context.Process(target=_register_all, args=(str(artifacts_dir), barrier)) for _ in range(8)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert [racer.exitcode for racer in racers] == [0] * 8

    with session_scope() as session:

        def count(model: type, *where: object) -> int:
            query = select(func.count()).select_from(model).where(*where)
            return session.execute(query).scalar_one()

        algorithms = len(list(find_artifacts(artifacts_dir)))
        assert count(Endpoint) == 1
        assert count(MLAlgorithm) == algorithms
        assert count(MLAlgorithmStatus) == algorithms
        assert count(MLAlgorithmStatus, MLAlgorithmStatus.active.is_(True)) == algorithms
