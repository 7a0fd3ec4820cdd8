"""What the A/B tests do again and again: send records through an endpoint's default
traffic with their true labels, plant a control, register a second version, let beat
decide, read statuses and the rows a summary must match."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from producer import Client
from producer.local_processes import LocalBeat
from shared.db.engine import session_scope
from shared.db.models import Feedback, MLRequest
from shared.lifecycle import status_history
from shared.registry import list_algorithms, set_status
from tests.conftest import PLANTED
from workers.training import TARGET

RANDOM_FOREST = "random forest"


def statuses(endpoint: str = "income_classifier") -> dict[str, str]:
    """Status by NAME (and by NAME@VERSION when a name has several versions)."""
    with session_scope() as session:
        algorithms = list_algorithms(session, endpoint=endpoint)
    found = {a.name: a.status for a in algorithms}
    found.update({f"{a.name}@{a.version}": a.status for a in algorithms})
    return found


def send_with_feedback(
    client: Client,
    rows: pd.DataFrame,
    *,
    labels: bool = True,
    endpoint: str = "income_classifier",
    target: str = TARGET,
) -> list[dict[str, Any]]:
    """Each row as a single prediction through the endpoint's default traffic, then its
    true label as feedback."""
    records = rows.drop(columns=[target]).to_dict("records")
    ids = [client.predict(record, endpoint=endpoint) for record in records]
    results = [client.result(i, timeout=30) for i in ids]
    if labels:
        outcome = client.feedback_many(zip(ids, rows[target], strict=True))
        assert outcome["recorded"] == len(ids) and not outcome["invalid"]
    return results


def send_batch_with_feedback(
    client: Client,
    rows: pd.DataFrame,
    *,
    endpoint: str = "income_classifier",
    target: str = TARGET,
    labelled: Callable[[dict[str, Any]], bool] = lambda result: True,
) -> list[dict[str, Any]]:
    """The rows as one batch (in chunks of 50) through the endpoint's default traffic;
    then the true label of each record whose result ``labelled`` accepts."""
    submission = client.submit_batch(rows.drop(columns=[target]), endpoint=endpoint, chunk_size=50)
    deadline = time.monotonic() + 60
    while client.batch_status(submission.batch_id)["state"] != "done":
        assert time.monotonic() < deadline, "the batch was not scored in time"
        time.sleep(0.1)
    results = [client.result(request_id) for request_id in submission.request_ids]
    given = [
        (result["request_id"], truth)
        for result, truth in zip(results, rows[target], strict=True)
        if labelled(result)
    ]
    if given:
        outcome = client.feedback_many(given)
        assert outcome["recorded"] == len(given) and not outcome["invalid"]
    return results


def plant_control() -> None:
    """Make the wrong-on-purpose model the endpoint's production algorithm."""
    with session_scope() as session:
        ids = {a.name: a.id for a in list_algorithms(session)}
        set_status(session, algorithm_id=ids[RANDOM_FOREST], status="testing", created_by="t")
        set_status(session, algorithm_id=ids[PLANTED], status="production", created_by="t")


def register_version(bundles: list[tuple[str, Any]], name: str, version: str, status: str) -> None:
    """The built-in ``name`` again under another version: the same model, so an A/A test."""
    from workers.registration import publish

    bundle = next(b for _, b in bundles if b.manifest["name"] == name)
    publish(
        replace(bundle, manifest={**bundle.manifest, "version": version}),
        status=status,
        created_by="tests",
    )


@contextmanager
def beat(log_path: Path, every: float = 0.5) -> Iterator[LocalBeat]:
    with LocalBeat(log_path=log_path, env={"MLQ_AB_CHECK_SECONDS": str(every)}) as process:
        yield process


def wait_until_ended(client: Client, test_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (report := client.ab_report(test_id))["ended_at"] is None:
        assert time.monotonic() < deadline, "beat did not end the test"
        time.sleep(0.3)
    return report


def status_rows(algorithm: str) -> list[dict[str, Any]]:
    """An algorithm's status history (every version of it), oldest first."""
    with session_scope() as session:
        history = status_history(session, endpoint="income_classifier")
    return [row for row in history if row["algorithm"] == algorithm]


def recomputed(test_id: int) -> dict[str, tuple[int, int, float | None]]:
    """Requests, labelled and accuracy per arm of a split test, straight from the rows."""
    with session_scope() as session:
        rows = session.execute(
            select(MLRequest.ab_arm, MLRequest.label, Feedback.label)
            .outerjoin(Feedback, Feedback.request_id == MLRequest.id)
            .where(MLRequest.ab_test_id == test_id)
        ).all()
    figures = {}
    for arm in ("A", "B"):
        mine = [r for r in rows if r[0] == arm]
        labelled = [r for r in mine if r[2] is not None]
        correct = sum(r[1] == r[2] for r in labelled)
        figures[arm] = (len(mine), len(labelled), correct / len(labelled) if labelled else None)
    return figures


def arms_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(summary["evidence"]["arms"])
