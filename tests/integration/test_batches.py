"""Batches through Redis, a real worker and PostgreSQL: order, counts, bad records,
redelivery, CSV, JSON Lines and DataFrames."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from producer import Client
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, TASK_PREDICT_BATCH, batch_request_id
from shared.db.batches import create_batch, iter_batch_results
from shared.db.engine import session_scope
from shared.db.models import Batch, MLRequest
from tests.integration.conftest import run_mlq
from workers.training import TARGET

pytestmark = pytest.mark.integration


def wait_done(client: Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.batch_status(batch_id)
        if status["state"] == "done":
            return status
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} not done: {client.batch_status(batch_id)}")


def rows_of(batch_id: str) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(MLRequest).where(MLRequest.batch_id == batch_id)
        return session.execute(query).scalar_one()


def test_a_dataframe_is_scored_in_input_order(client: Client, held_out: pd.DataFrame) -> None:
    held_out = held_out.head(1000)
    frame = held_out.drop(columns=[TARGET])
    submission = client.submit_batch(frame, chunk_size=128)
    assert len(submission.request_ids) == 1000
    status = wait_done(client, submission.batch_id)
    assert (status["total"], status["done"], status["ok"], status["failed"]) == (
        1000,
        1000,
        1000,
        0,
    )
    assert status["rate_per_s"] > 0
    with session_scope() as session:
        rows = session.execute(
            select(MLRequest.batch_position, MLRequest.id, MLRequest.input, MLRequest.label)
            .where(MLRequest.batch_id == submission.batch_id)
            .order_by(MLRequest.batch_position)
        ).all()
    assert [r.id for r in rows] == list(submission.request_ids)
    assert [r.input["fnlwgt"] for r in rows] == frame["fnlwgt"].tolist()
    accuracy = sum(r.label == t for r, t in zip(rows, held_out[TARGET], strict=True)) / 1000
    assert accuracy > 0.8


def test_bad_records_get_their_own_rows_and_the_rest_is_scored(client: Client) -> None:
    records: list[Any] = [dict(EXAMPLE_RECORD) for _ in range(10)]
    records[2] = {**EXAMPLE_RECORD, "age": "abc"}
    records[5] = [1, 2, 3]
    records[7] = {**EXAMPLE_RECORD, "workclass": "Astronaut"}
    submission = client.submit_batch(records, chunk_size=4)
    status = wait_done(client, submission.batch_id)
    assert (status["ok"], status["failed"]) == (7, 3)
    results = {i: client.result(submission.request_ids[i]) for i in range(10)}
    assert results[2]["error"]["field"] == "age"
    assert "must be a JSON object" in results[5]["error"]["message"]
    assert results[7]["error"]["field"] == "workclass"
    assert all(results[i]["label"] == "<=50K" for i in (0, 1, 3, 4, 6, 8, 9))


def test_a_redelivered_chunk_writes_no_second_row(client: Client) -> None:
    submission = client.submit_batch([EXAMPLE_RECORD] * 6, chunk_size=3)
    wait_done(client, submission.batch_id)
    kwargs = {
        "batch_id": submission.batch_id,
        "endpoint": "income_classifier",
        "start": 3,
        "records": [EXAMPLE_RECORD] * 3,
    }
    again = app.send_task(TASK_PREDICT_BATCH, kwargs=kwargs).get(timeout=30)
    assert (again["count"], again["written"]) == (3, 0)
    # A chunk cut differently overlaps what exists and scores only the new position.
    wider = {**kwargs, "start": 4, "records": [EXAMPLE_RECORD] * 3}
    assert app.send_task(TASK_PREDICT_BATCH, kwargs=wider).get(timeout=30)["written"] == 1
    assert rows_of(submission.batch_id) == 7


def test_resubmitting_the_same_batch_scores_nothing_twice(client: Client) -> None:
    first = client.submit_batch([EXAMPLE_RECORD] * 5, chunk_size=2)
    wait_done(client, first.batch_id)
    again = client.submit_batch([EXAMPLE_RECORD] * 5, chunk_size=2, batch_id=first.batch_id)
    assert again.batch_id == first.batch_id
    wait_done(client, first.batch_id)
    time.sleep(0.5)  # let the resent chunks run
    assert rows_of(first.batch_id) == 5


def test_a_record_of_a_batch_is_polled_by_its_request_id(client: Client) -> None:
    submission = client.submit_batch([EXAMPLE_RECORD] * 3)
    result = client.result(submission.request_ids[1], timeout=30)
    assert result["status"] == "OK" and result["request_id"] == batch_request_id(
        submission.batch_id, 1
    )


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EXAMPLE_RECORD))
        writer.writeheader()
        writer.writerows(records)


def test_the_cli_scores_a_csv_file_and_writes_results_in_order(
    client: Client, tmp_path: Path, held_out: pd.DataFrame
) -> None:
    records = held_out.drop(columns=[TARGET]).head(300).to_dict("records")
    records[10]["age"] = "abc"
    path = tmp_path / "records.csv"
    write_csv(path, records)
    done = run_mlq("batch", "submit", str(path), "--chunk-size", "64", "--wait", "--json")
    assert done.returncode == 1, done.stderr  # one record failed
    final = json.loads(done.stdout)  # the id went to stderr: stdout is one document
    batch_id = final["batch_id"]
    assert f"batch {batch_id}" in done.stderr
    assert (final["total"], final["ok"], final["failed"]) == (300, 299, 1)
    status = run_mlq("batch", "status", batch_id, "--json")
    assert status.returncode == 1  # done, with a failed record
    assert json.loads(status.stdout)["done"] == 300
    out = tmp_path / "out.csv"
    exported = run_mlq("batch", "results", batch_id, "-o", str(out))
    assert exported.returncode == 1, exported.stderr  # as the batch: one record failed
    assert exported.stdout == "" and f"wrote 300 records to {out}" in exported.stderr
    with out.open() as handle:
        lines = list(csv.DictReader(handle))
    assert [int(line["position"]) for line in lines] == list(range(300))
    assert lines[10]["status"] == "ERROR" and "age" in lines[10]["error"]
    assert lines[11]["status"] == "OK" and lines[11]["label"] in ("<=50K", ">50K")
    assert lines[0]["algorithm"] == "random forest" and lines[0]["version"] == "0.0.1"


def test_the_cli_scores_json_lines(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([json.dumps(EXAMPLE_RECORD)] * 4 + ["{not json"]) + "\n")
    done = run_mlq("batch", "submit", str(path), "--status", "testing", "--wait")
    batch_id, human = done.stdout.split("\n", 1)  # the id at once, then the final status
    assert "state:        done" in human and "failed:       1" in human
    results = run_mlq("batch", "results", batch_id)
    lines = list(csv.DictReader(io.StringIO(results.stdout)))
    assert [line["status"] for line in lines] == ["OK"] * 4 + ["ERROR"]
    assert lines[0]["algorithm"] == "extra trees"


def test_a_file_with_ids_and_labels_is_scored_and_its_ids_come_back(
    client: Client, tmp_path: Path, held_out: pd.DataFrame
) -> None:
    """The trial's file: a row id and the true label beside the features."""
    frame = held_out.head(40).copy()
    frame.insert(0, "row_id", [f"row-{i:03d}" for i in range(40)])
    path = tmp_path / "labelled.csv"
    frame.to_csv(path, index=False)
    done = run_mlq(
        "batch",
        "submit",
        str(path),
        "--id-column",
        "row_id",
        "--ignore-columns",
        TARGET,
        "--chunk-size",
        "16",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert (final["ok"], final["failed"]) == (40, 0)  # neither column reached the model
    exported = run_mlq("batch", "results", final["batch_id"], "--json")
    assert exported.returncode == 0, exported.stderr
    lines = json.loads(exported.stdout)
    assert [line["external_id"] for line in lines] == list(frame["row_id"])
    with session_scope() as session:
        stored = session.execute(
            select(MLRequest.input).where(MLRequest.batch_id == final["batch_id"])
        ).scalars()
        assert not any({"row_id", TARGET} & set(record) for record in stored)


def test_the_client_takes_the_same_columns_out_of_a_dataframe(
    client: Client, held_out: pd.DataFrame
) -> None:
    frame = held_out.head(5).assign(ticket=[10, 11, 12, 13, 14])
    submission = client.submit_batch(frame, id_column="ticket", ignore_columns=[TARGET])
    status = wait_done(client, submission.batch_id)
    assert status["failed"] == 0
    with session_scope() as session:
        ids = [row[1] for row in iter_batch_results(session, batch_id=submission.batch_id, total=5)]
    assert ids == ["10", "11", "12", "13", "14"]


def test_a_batch_still_being_submitted_is_not_finished(client: Client) -> None:
    with session_scope() as session:
        create_batch(
            session,
            batch_id="half",
            endpoint="income_classifier",
            status=None,
            version=None,
            source=None,
        )
    results = run_mlq("batch", "results", "half")
    assert results.returncode == 3, results.stderr
    assert results.stdout == "" and "still being submitted" in results.stderr
    status = run_mlq("batch", "status", "half")
    assert status.returncode == 3 and "state:        submitting" in status.stdout


def test_an_unknown_batch_says_so(client: Client) -> None:
    done = run_mlq("batch", "status", "no-such-batch")
    assert done.returncode == 4
    assert "no batch with id 'no-such-batch'" in done.stderr


def test_the_same_chunk_twice_at_once_writes_each_row_once(client: Client) -> None:
    """A redelivery racing the first delivery: both COPY, one falls back, none doubles."""
    for attempt in range(3):
        batch_id = f"race-{attempt}"
        kwargs = {
            "batch_id": batch_id,
            "endpoint": "income_classifier",
            "start": 0,
            "records": [EXAMPLE_RECORD] * 500,
        }
        both = [app.send_task(TASK_PREDICT_BATCH, kwargs=kwargs) for _ in range(2)]
        results = [sent.get(timeout=60) for sent in both]
        assert sorted(r["written"] for r in results)[-1] <= 500
        assert sum(r["written"] for r in results) == 500
        assert rows_of(batch_id) == 500


def test_a_batch_id_taken_by_a_single_request_does_not_stop_the_chunk(client: Client) -> None:
    client.result(client.predict(EXAMPLE_RECORD, request_id="taken:1"), timeout=30)
    kwargs = {
        "batch_id": "taken",
        "endpoint": "income_classifier",
        "start": 0,
        "records": [EXAMPLE_RECORD] * 3,
    }
    # The batch's record 1 gets a row of its own beside the single request's (another
    # created_at: see docs/operations.md#the-request-log), which is left as it was.
    assert app.send_task(TASK_PREDICT_BATCH, kwargs=kwargs).get(timeout=30)["written"] == 3
    with session_scope() as session:
        kinds = session.execute(
            select(MLRequest.batch_id).where(MLRequest.id == "taken:1").order_by(MLRequest.batch_id)
        ).all()
    assert kinds == [("taken",), (None,)]


def test_records_the_database_would_refuse_still_get_error_rows(client: Client) -> None:
    records: list[Any] = [
        {**EXAMPLE_RECORD, "customer_id": 12345678901234567890123},  # beyond 64 bits
        {**EXAMPLE_RECORD, "sex": "Ma\x00le"},  # NUL: PostgreSQL text refuses it
        {**EXAMPLE_RECORD, "bad\x00key": 1},
        EXAMPLE_RECORD,
    ]
    submission = client.submit_batch(records)
    status = wait_done(client, submission.batch_id)
    assert (status["ok"], status["failed"]) == (1, 3)
    single = client.result(client.predict({**EXAMPLE_RECORD, "race": "\x00"}), timeout=30)
    assert single["status"] == "ERROR" and single["error"]["field"] == "race"


def test_an_empty_input_is_refused_before_any_batch_exists(client: Client, tmp_path: Path) -> None:
    for name, text in (("empty.csv", ""), ("header.csv", "age,sex\n"), ("x.txt", "a\n")):
        path = tmp_path / name
        path.write_text(text)
        done = run_mlq("batch", "submit", str(path))
        assert done.returncode == 1, done.stdout
        assert done.stdout == ""  # no batch id was printed
    with session_scope() as session:
        assert session.execute(select(func.count()).select_from(Batch)).scalar_one() == 0


def test_a_header_that_is_not_the_models_input_is_refused_before_a_batch_exists(
    client: Client, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    """The label still in the file, a column missing and one misspelt: named, nothing sent."""
    frame = held_out.head(20).drop(columns=["fnlwgt"]).rename(columns={"age": "Age"})
    frame.to_csv(tmp_path / "wrong.csv", index=False)
    done = run_mlq("batch", "submit", str(tmp_path / "wrong.csv"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "Error: the header does not match the model's columns: missing 'age', 'fnlwgt'; "
        f"unknown 'Age' (did you mean 'age'?); extra '{TARGET}' (--ignore-columns drops them)"
    )
    with session_scope() as session:
        assert session.execute(select(func.count()).select_from(Batch)).scalar_one() == 0
    fixed = held_out.head(20)
    fixed.to_csv(tmp_path / "right.csv", index=False)
    sent = run_mlq("batch", "submit", str(tmp_path / "right.csv"), "--ignore-columns", TARGET)
    assert sent.returncode == 0, sent.stderr
