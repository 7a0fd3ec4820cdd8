"""Bad input through the queue: a clear error naming the field, an error row, no crash."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import select

from producer import Client
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, TASK_ECHO
from shared.db.engine import session_scope
from shared.db.models import MLRequest
from shared.registry import register_algorithm

pytestmark = pytest.mark.integration


def with_(**changes: object) -> dict[str, object]:
    return {**EXAMPLE_RECORD, **{k.replace("_", "-"): v for k, v in changes.items()}}


BAD_RECORDS: list[tuple[str, Any, str | None, str]] = [
    ("missing field", {k: v for k, v in EXAMPLE_RECORD.items() if k != "sex"}, "sex", "missing"),
    ("wrong type", with_(age="abc"), "age", "expected a number"),
    ("null", with_(age=None), "age", "is null"),
    ("unknown category", with_(race="Martian"), "race", "unknown category"),
    ("extra field", {**EXAMPLE_RECORD, "salary": 1}, "salary", "unknown field"),
    ("negative age", with_(age=-5), "age", "out of range"),
    ("array", [EXAMPLE_RECORD], None, "must be a JSON object, got an array"),
    ("number", 7, None, "must be a JSON object, got a number"),
]


@pytest.mark.parametrize(
    ("case", "record", "field", "reason"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS]
)
def test_a_bad_record_gets_a_clear_error_and_an_error_row(
    client: Client, case: str, record: Any, field: str | None, reason: str
) -> None:
    request_id = client.predict(record)
    result = client.result(request_id, timeout=30)
    assert result["status"] == "ERROR", case
    assert result["error"]["code"] == "invalid_record"
    assert result["error"]["field"] == field
    assert reason in result["error"]["message"]
    with session_scope() as session:
        stored = session.execute(
            select(MLRequest).where(MLRequest.id == request_id)
        ).scalar_one_or_none()
        assert stored is not None
        assert (stored.status, stored.error_code) == ("ERROR", "invalid_record")
        assert stored.input == record
        assert stored.label is None


def selection_error(client: Client, **selection: str) -> dict[str, Any]:
    endpoint = selection.pop("endpoint", "income_classifier")
    request_id = client.predict(EXAMPLE_RECORD, endpoint=endpoint, **selection)
    result = client.result(request_id, timeout=30)
    assert result["status"] == "ERROR"
    with session_scope() as session:
        stored = session.execute(
            select(MLRequest).where(MLRequest.id == request_id)
        ).scalar_one_or_none()
        assert stored is not None and stored.error_code == result["error"]["code"]
    return result["error"]


def test_an_unknown_endpoint(client: Client) -> None:
    error = selection_error(client, endpoint="spam_filter")
    assert error["code"] == "unknown_endpoint"
    assert "unknown endpoint 'spam_filter'" in error["message"]


def test_an_unknown_version(client: Client) -> None:
    error = selection_error(client, version="9.9.9")
    assert error["code"] == "no_algorithm"
    assert "version '9.9.9'" in error["message"]


def test_an_ambiguous_selection(client: Client) -> None:
    with session_scope() as session:
        register_algorithm(
            session,
            endpoint="income_classifier",
            name="extra trees",
            version="0.0.2",
            initial_status="testing",
            description="",
            owner="tests",
            artifact_sha256="0" * 64,
            created_by="tests",
        )
    error = selection_error(client, status="testing")
    assert error["code"] == "ambiguous_selection"
    assert "name a version" in error["message"]


def test_the_worker_survives_all_of_it(client: Client) -> None:
    for _, record, _, _ in BAD_RECORDS:
        client.predict(record)
    last = client.predict(EXAMPLE_RECORD)
    assert client.result(last, timeout=30)["label"] == "<=50K"
    assert app.send_task(TASK_ECHO, args=["alive"]).get(timeout=10) == "alive"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_get_an_error_row_too(client: Client, value: float) -> None:
    """JSON decoders accept NaN and Infinity; PostgreSQL's JSONB does not."""
    request_id = client.predict({**EXAMPLE_RECORD, "age": value})
    result = client.result(request_id, timeout=30)
    assert result["status"] == "ERROR"
    assert result["error"]["field"] == "age"
    assert "not a finite number" in result["error"]["message"]
    with session_scope() as session:
        stored = session.execute(
            select(MLRequest).where(MLRequest.id == request_id)
        ).scalar_one_or_none()
        assert stored is not None and stored.status == "ERROR"
        assert stored.input["age"] in ("NaN", "Infinity", "-Infinity")
