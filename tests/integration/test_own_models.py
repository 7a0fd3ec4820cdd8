"""Serving your own model: registered from the command line or from Python, served by the
running worker with no restart, side by side with the income classifier."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio

from examples.user_models import diabetes, iris, relationship
from producer import Client
from shared.contracts import EXAMPLE_RECORD
from shared.db.engine import session_scope
from shared.db.models import utcnow
from shared.db.stats import serving_stats
from tests.integration.conftest import run_mlq
from workers.registration import register_model

pytestmark = pytest.mark.integration


def add(model_file: Path, sample: Path, *args: str) -> dict[str, Any]:
    done = run_mlq("models", "add", str(model_file), "--sample", str(sample), "--json", *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def listed(endpoint: str) -> list[dict[str, Any]]:
    done = run_mlq("models", "list", "--endpoint", endpoint, "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_a_skops_classifier_added_from_the_command_line_is_served(
    client: Client, tmp_path: Path
) -> None:
    model, features, _ = iris()
    sio.dump(model, tmp_path / "iris.skops")
    features.head(120).to_csv(tmp_path / "sample.csv", index=False)
    info = add(
        tmp_path / "iris.skops",
        tmp_path / "sample.csv",
        *("--endpoint", "iris", "--name", "forest", "--version", "1", "--status", "production"),
    )
    assert (info["status"], info["runtime"], info["created"]) == ("production", "onnx", True)

    record = features.iloc[130].to_dict()
    result = client.result(client.predict(record, endpoint="iris"), timeout=60)
    assert result["status"] == "OK"
    assert result["label"] == str(model.predict(features.iloc[[130]])[0])
    assert result["algorithm"]["sha256"] == info["artifact_sha256"]
    # The income classifier is still served beside it.
    income = client.result(client.predict(EXAMPLE_RECORD), timeout=30)
    assert (income["status"], income["label"]) == ("OK", "<=50K")

    bad = client.result(client.predict({**record, "petal width (cm)": "wide"}, endpoint="iris"), 30)
    assert bad["error"]["field"] == "petal width (cm)"
    assert bad["error"]["message"].endswith("expected a number, got a string 'wide'")

    # The worker says it holds the new model within a few poll intervals.
    deadline = time.monotonic() + 30
    while not listed("iris")[0]["workers"] and time.monotonic() < deadline:
        time.sleep(1)
    assert listed("iris")[0]["workers"], "no live worker reported holding the new model"


def test_the_same_file_again_is_a_no_op_and_another_file_is_refused(
    client: Client, tmp_path: Path
) -> None:
    model, features, _ = iris()
    sio.dump(model, tmp_path / "v1.skops")
    features.head(100).to_csv(tmp_path / "sample.csv", index=False)
    where = ("--endpoint", "iris", "--name", "forest", "--version", "1")
    first = add(tmp_path / "v1.skops", tmp_path / "sample.csv", *where)
    again = add(tmp_path / "v1.skops", tmp_path / "sample.csv", *where)
    assert (first["created"], again["created"]) == (True, False)
    assert again["id"] == first["id"]

    other, _, _ = iris(n_estimators=5, seed=7)
    sio.dump(other, tmp_path / "v1-retrained.skops")
    refused = run_mlq(
        "models",
        "add",
        str(tmp_path / "v1-retrained.skops"),
        "--sample",
        str(tmp_path / "sample.csv"),
        *where,
    )
    assert refused.returncode != 0
    assert "registered with another file" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [m["artifact_sha256"] for m in listed("iris")] == [first["artifact_sha256"]]


def test_a_pickle_needs_trust_on_the_command_line(client: Client, tmp_path: Path) -> None:
    model, features, _ = iris()
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    features.head(50).to_csv(tmp_path / "sample.csv", index=False)
    where = ("--endpoint", "iris", "--name", "forest", "--version", "p1")
    refused = run_mlq(
        "models",
        "add",
        str(tmp_path / "model.pkl"),
        "--sample",
        str(tmp_path / "sample.csv"),
        *where,
    )
    assert refused.returncode != 0 and "--trust-pickle" in refused.stderr
    assert add(tmp_path / "model.pkl", tmp_path / "sample.csv", *where, "--trust-pickle")["created"]


def test_a_multiclass_pipeline_registered_from_python_scores_a_batch(client: Client) -> None:
    model, features, _ = relationship()
    info = register_model(
        model,
        endpoint="relationship",
        name="one-hot logistic",
        version="2026.12",
        sample=features.head(300),
        status="production",
        created_by="a notebook",
    )
    assert (info["runtime"], len(info["classes"])) == ("onnx", 6)
    rows = features.tail(400).reset_index(drop=True)
    submission = client.submit_batch(rows, endpoint="relationship")
    status = wait_for(client, submission.batch_id)
    assert (status["done"], status["failed"]) == (400, 0)
    labels = [client.result(submission.request_ids[i])["label"] for i in (0, 199, 399)]
    assert labels == list(model.predict(rows.iloc[[0, 199, 399]]))


def test_a_regressor_takes_true_values_as_feedback_and_stats_show_its_error(
    client: Client, tmp_path: Path
) -> None:
    model, features, target = diabetes()
    (tmp_path / "model.joblib").write_bytes(pickle.dumps(model))
    features.head(200).to_csv(tmp_path / "sample.csv", index=False)
    add(
        tmp_path / "model.joblib",
        tmp_path / "sample.csv",
        *("--endpoint", "diabetes", "--name", "boosting", "--version", "1"),
        *("--status", "production", "--trust-pickle"),
    )
    started = utcnow()
    ids = [client.predict(features.iloc[i].to_dict(), endpoint="diabetes") for i in range(300, 340)]
    results = [client.result(request_id, timeout=30) for request_id in ids]
    assert all(r["status"] == "OK" and r["label"] is None for r in results)
    expected = model.predict(features.iloc[300:340])
    assert max(abs(r["value"] - e) for r, e in zip(results, expected, strict=True)) < 1e-3
    outcome = client.feedback_many(zip(ids, [float(v) for v in target.iloc[300:340]], strict=True))
    assert outcome["recorded"] == 40 and not outcome["invalid"]
    rejected = client.feedback(ids[0], "high")
    assert (
        rejected["invalid"][0]["error"] == "label 'high' is not a number (a regressor's true value)"
    )

    with session_scope() as session:
        [row] = serving_stats(session, since=started, endpoint="diabetes")
    true_mae = float(abs(expected - target.iloc[300:340].to_numpy()).mean())
    assert row["labelled"] == 40 and row["accuracy"] is None
    assert row["mae"] == pytest.approx(true_mae, rel=1e-3)
    shown = run_mlq("stats", "--endpoint", "diabetes")
    assert shown.returncode == 0 and "MAE" in shown.stdout


def wait_for(client: Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = client.batch_status(batch_id)
        if status["state"] == "done" or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
