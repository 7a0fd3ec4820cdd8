"""The registry on SQLite: idempotent registration and constraints the database enforces."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db.models import Endpoint, MLAlgorithm, MLAlgorithmStatus
from shared.errors import ConfigurationError, UnknownEndpointError
from shared.registry import list_algorithms, register_algorithm, select_algorithm, set_status


def register(session: Session, name: str, version: str = "0.0.1", status: str = "testing") -> int:
    info = register_algorithm(
        session,
        endpoint="income_classifier",
        name=name,
        version=version,
        initial_status=status,
        description="",
        code="",
        owner="tests",
        artifact_sha256=None,
        created_by="tests",
    )
    session.commit()
    return info.id


def count(session: Session, model: type) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_registering_twice_keeps_one_endpoint_and_one_status(session: Session) -> None:
    for _ in range(2):
        register(session, "random forest", status="production")
        register(session, "extra trees")
    assert count(session, Endpoint) == 1
    assert count(session, MLAlgorithm) == 2
    assert count(session, MLAlgorithmStatus) == 2
    assert [(a.name, a.status) for a in list_algorithms(session)] == [
        ("extra trees", "testing"),
        ("random forest", "production"),
    ]


def test_registration_never_resets_a_later_status(session: Session) -> None:
    algorithm_id = register(session, "extra trees")
    set_status(session, algorithm_id=algorithm_id, status="staging", created_by="tests")
    session.commit()
    register(session, "extra trees")
    assert list_algorithms(session)[0].status == "staging"
    assert count(session, MLAlgorithmStatus) == 2  # the history is kept


def test_the_database_allows_one_active_status_per_algorithm(session: Session) -> None:
    algorithm_id = register(session, "extra trees")
    endpoint_id = session.execute(select(Endpoint.id)).scalar_one()
    session.add(
        MLAlgorithmStatus(
            algorithm_id=algorithm_id,
            endpoint_id=endpoint_id,
            status="staging",
            active=True,
            created_by="sneaky",
        )
    )
    with pytest.raises(IntegrityError):
        session.commit()


def test_the_database_allows_one_production_algorithm_per_endpoint(session: Session) -> None:
    register(session, "random forest", status="production")
    other = register(session, "extra trees")
    with pytest.raises(IntegrityError):
        set_status(session, algorithm_id=other, status="production", created_by="tests")
    session.rollback()
    with pytest.raises(ConfigurationError, match="already has a production algorithm"):
        register(session, "gradient boosting", status="production")


def test_selection_of_an_unknown_endpoint_is_its_own_error(session: Session) -> None:
    register(session, "random forest", status="production")
    with pytest.raises(UnknownEndpointError, match=r"unknown endpoint 'nope'.*income_classifier"):
        select_algorithm(session, endpoint="nope")
    assert select_algorithm(session, endpoint="income_classifier").name == "random forest"


def test_an_unknown_status_is_refused(session: Session) -> None:
    with pytest.raises(ConfigurationError, match="not one of"):
        register(session, "x", status="archived")
