"""The tutorial's A/B notebook, unchanged, against the tutorial's routes: start a test,
send 100 held-out records with ?status=ab_testing (form-encoded, as `requests.post(url,
record)` sends them, and JSON), give each its true label with PUT, stop the test."""

from __future__ import annotations

from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import func, select

from shared.db.engine import session_scope
from shared.db.models import Feedback, MLRequest
from workers.training import TARGET

pytestmark = pytest.mark.integration


def test_the_tutorial_ab_notebook_runs_unchanged(
    http: httpx.Client, held_out: pd.DataFrame
) -> None:
    algorithms = {a["name"]: a for a in http.get("/api/v1/mlalgorithms").json()}
    assert algorithms["random forest"]["current_status"] == "production"
    assert [e["name"] for e in http.get("/api/v1/endpoints").json()] == ["income_classifier"]
    started = http.post(
        "/api/v1/abtests",
        json={
            "title": "Random Forest vs Extra Trees",
            "created_by": "notebook",
            "parent_mlalgorithm_1": algorithms["random forest"]["id"],
            "parent_mlalgorithm_2": algorithms["extra trees"]["id"],
        },
    )
    assert started.status_code == 201, started.text
    rows = held_out.head(100)
    answers: list[dict[str, Any]] = []
    for i, (_, row) in enumerate(rows.iterrows()):
        record = row.drop(labels=[TARGET]).to_dict()
        url = "/api/v1/income_classifier/predict?status=ab_testing"
        # The notebook's requests.post(url, input_data): a form, every value a string.
        sent = http.post(url, data=record) if i % 2 else http.post(url, json=record)
        assert sent.status_code == 200, sent.text
        answer = sent.json()
        assert answer["status"] == "OK" and set(answer) == {
            "label",
            "probability",
            "status",
            "request_id",
        }
        feedback = http.put(
            f"/api/v1/mlrequests/{answer['request_id']}", data={"feedback": row[TARGET]}
        )
        assert feedback.status_code == 200 and feedback.json()["recorded"] == 1
        answers.append(answer)
    stopped = http.post(f"/api/v1/stop_ab_test/{started.json()['id']}")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["message"] == "AB Test finished."
    summary = stopped.json()["summary"]
    assert "accuracy" in str(summary)
    test_id = started.json()["id"]
    with session_scope() as session:
        arms = dict(
            session.execute(
                select(MLRequest.ab_arm, func.count())
                .where(MLRequest.ab_test_id == test_id)
                .group_by(MLRequest.ab_arm)
            ).all()
        )
        labelled = session.execute(select(func.count()).select_from(Feedback)).scalar_one()
    assert set(arms) == {"A", "B"} and sum(arms.values()) == 100
    assert labelled == 100
    after = {a["name"]: a["current_status"] for a in http.get("/api/v1/mlalgorithms").json()}
    assert after["random forest"] == "production"  # too few labels to promote


def test_tutorial_errors_keep_the_tutorial_s_shape(http: httpx.Client) -> None:
    answer = http.post("/api/v1/income_classifier/predict", data={"age": "37"})
    assert answer.status_code == 400
    assert answer.json()["status"] == "Error" and answer.json()["message"]
    unknown = http.post("/api/v1/nope/predict", json={"age": 37})
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_endpoint"
