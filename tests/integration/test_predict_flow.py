"""One prediction through Redis, a real worker process and PostgreSQL, as a user sends it."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from producer import Client
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, TASK_PREDICT
from shared.db.engine import session_scope
from shared.db.ledger import record_accepted
from shared.db.models import MLRequest
from shared.errors import InvalidRequestError, UnknownRequestError
from tests.integration.conftest import run_mlq

pytestmark = pytest.mark.integration


def row(request_id: str) -> MLRequest | None:
    with session_scope() as session:
        return session.execute(
            select(MLRequest).where(MLRequest.id == request_id)
        ).scalar_one_or_none()


def test_a_prediction_through_the_queue_gives_a_label_and_a_request_id(client: Client) -> None:
    request_id = client.predict(EXAMPLE_RECORD, endpoint="income_classifier")
    result = client.result(request_id, timeout=30)
    assert result["status"] == "OK"
    assert result["label"] == "<=50K"
    assert result["request_id"] == request_id
    assert 0.5 < result["probability"] <= 1
    assert result["probability"] == round(result["probability"], 6)  # no float32 noise
    assert len(repr(result["probability"])) <= 8
    assert result["algorithm"]["name"] == "random forest"
    stored = row(request_id)
    assert stored is not None
    assert stored.status == "OK" and stored.label == "<=50K"
    assert stored.input == EXAMPLE_RECORD
    assert stored.response == result
    assert stored.latency_ms is not None and stored.latency_ms > 0


def test_status_selects_the_testing_algorithm(client: Client) -> None:
    result = client.result(client.predict(EXAMPLE_RECORD, status="testing"), timeout=30)
    assert (result["status"], result["label"]) == ("OK", "<=50K")
    assert result["algorithm"]["name"] == "extra trees"


def test_results_outlive_the_result_backend(client: Client) -> None:
    request_id = client.predict(EXAMPLE_RECORD)
    client.result(request_id, timeout=30)
    app.backend.forget(request_id)  # as if the backend entry had expired
    assert client.result(request_id)["label"] == "<=50K"


def test_an_id_no_mlq_producer_accepted_is_unknown_never_said_never_issued(
    client: Client,
) -> None:
    """Another producer (celery-node, Flower, send_task) may still have it queued."""
    with pytest.raises(UnknownRequestError, match="unknown to mlqueue") as raised:
        client.result(str(uuid.uuid4()), timeout=1)
    assert "may still be queued by another producer" in str(raised.value)
    assert "never" not in str(raised.value)


def test_an_accepted_id_whose_message_was_lost_is_queued_not_unknown(client: Client) -> None:
    """The ledger knows it (the broker lost it, nothing in the result backend): QUEUED."""
    request_id = str(uuid.uuid4())
    with session_scope() as session:
        record_accepted(
            session,
            producer="client",
            items=[(request_id, "income_classifier", {"record": EXAMPLE_RECORD})],
        )
    assert client.result(request_id, timeout=0.5)["status"] == "QUEUED"


def test_a_batch_shaped_request_id_is_refused_for_a_single_prediction(client: Client) -> None:
    with pytest.raises(InvalidRequestError, match="reserve"):
        client.predict(EXAMPLE_RECORD, request_id="nightly:7")
    # A producer that sends it anyway gets an error answer, and no row takes the place
    # of batch nightly's record 7.
    kwargs = {"record": EXAMPLE_RECORD, "endpoint": "income_classifier", "request_id": "n:7"}
    answer = app.send_task(TASK_PREDICT, kwargs=kwargs).get(timeout=30)
    assert answer["status"] == "ERROR" and answer["error"]["field"] == "request_id"
    with session_scope() as session:
        assert session.scalars(select(MLRequest).where(MLRequest.id == "n:7")).first() is None


def test_a_redelivered_message_writes_no_second_row(client: Client) -> None:
    request_id = str(uuid.uuid4())
    kwargs = {"record": EXAMPLE_RECORD, "endpoint": "income_classifier", "request_id": request_id}
    first = app.send_task(TASK_PREDICT, kwargs=kwargs).get(timeout=30)
    second = app.send_task(TASK_PREDICT, kwargs=kwargs).get(timeout=30)
    assert first == second
    with session_scope() as session:
        rows = session.execute(
            select(func.count()).select_from(MLRequest).where(MLRequest.id == request_id)
        ).scalar_one()
    assert rows == 1


def test_without_a_request_id_the_task_id_keys_the_row(client: Client) -> None:
    """A producer in another language sends only the record and the endpoint."""
    sent = app.send_task(
        TASK_PREDICT, kwargs={"record": EXAMPLE_RECORD, "endpoint": "income_classifier"}
    )
    result = sent.get(timeout=30)
    assert result["request_id"] == sent.id
    assert row(sent.id) is not None


def test_the_cli_predicts_and_answers_for_the_id_later(client: Client) -> None:
    done = run_mlq(
        "predict",
        "--endpoint",
        "income_classifier",
        "--record",
        json.dumps(EXAMPLE_RECORD),
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["label"] == "<=50K" and printed["status"] == "OK"
    later = run_mlq("result", printed["request_id"], "--json")
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout) == printed


def test_the_cli_exits_non_zero_for_an_unknown_id(client: Client) -> None:
    done = run_mlq("result", "never-issued-42")
    assert done.returncode == 4
    assert "request 'never-issued-42' is unknown to mlqueue" in done.stderr


def test_the_cli_rejects_invalid_json_before_sending(client: Client) -> None:
    done = run_mlq("predict", "--record", "{age: 37")
    assert done.returncode == 2
    assert "not valid JSON" in done.stderr


def test_the_cli_lists_the_registry(client: Client) -> None:
    done = run_mlq("algorithms")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("random forest" in line and "production" in line for line in lines)
    assert any("extra trees" in line and "testing" in line for line in lines)


def test_stats_count_requests_errors_latency_and_accuracy(client: Client) -> None:
    good = [client.predict(EXAMPLE_RECORD) for _ in range(6)]
    bad = client.predict({**EXAMPLE_RECORD, "age": "old"})
    for request_id in (*good, bad):
        client.result(request_id, timeout=30)
    client.feedback_many([(good[0], "<=50K"), (good[1], ">50K")])
    done = run_mlq("stats", "--window", "10m", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert (row["algorithm"], row["requests"], row["errors"]) == ("random forest", 7, 1)
    assert (row["labelled"], row["accuracy"]) == (2, 0.5)
    assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"] <= row["latency_p99_ms"]
    table = run_mlq("stats")
    assert "random forest" in table.stdout and "p99 ms" in table.stdout


def test_the_operator_commands_run_as_compose_runs_them(client: Client) -> None:
    """docker-compose.yml's one-shot step: `mlq db upgrade && mlq train`."""
    for command in (("db", "upgrade"), ("train",)):
        done = run_mlq(*command)
        assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
