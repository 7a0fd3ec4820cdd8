"""The request log partitioned by day: one row per request however often its message
comes, partitions made on demand, batch rows in their batch's partition, and
`mlq db prune` dropping old days after summarising what refers to them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from producer import Client
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, TASK_PREDICT
from shared.db import partitions
from shared.db.engine import session_scope
from shared.db.models import (
    ABShadowAnswer,
    ABTest,
    Batch,
    Endpoint,
    Feedback,
    MLAlgorithm,
    MLRequest,
    MLRequestSummary,
)
from shared.db.prune import prune
from shared.db.requests import copied_ids
from tests.integration.conftest import run_mlq
from tests.integration.test_batches import wait_done

pytestmark = pytest.mark.integration


def rows_of(request_id: str) -> list[tuple[str, datetime]]:
    """(partition, created_at) of every row with this id."""
    with session_scope() as session:
        return [
            (str(partition), created_at)
            for partition, created_at in session.execute(
                text("SELECT tableoid::regclass, created_at FROM ml_request WHERE id = :id"),
                {"id": request_id},
            )
        ]


def predict_message(request_id: str, accepted_at: datetime | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "record": EXAMPLE_RECORD,
        "endpoint": "income_classifier",
        "request_id": request_id,
    }
    if accepted_at is not None:
        kwargs["accepted_at"] = accepted_at.isoformat()
    return app.send_task(TASK_PREDICT, kwargs=kwargs).get(timeout=30)


def test_a_redelivered_single_prediction_writes_one_row_in_its_days_partition(
    client: Client,
) -> None:
    # Accepted three days ago (a message that waited in the queue): the row goes to
    # that day's partition, with that time, however many times the message comes.
    request_id = str(uuid.uuid4())
    accepted = datetime.now(UTC) - timedelta(days=3)
    first = predict_message(request_id, accepted)
    second = predict_message(request_id, accepted)
    assert first == second
    assert rows_of(request_id) == [(partitions.partition_name(accepted.date()), accepted)]


def test_a_callers_request_id_sent_again_later_writes_no_second_row(client: Client) -> None:
    # Two messages with the same id, accepted hours apart (a caller's own retry):
    # different keys, but the write looks for the id within a day of its time.
    request_id = str(uuid.uuid4())
    accepted = datetime.now(UTC) - timedelta(hours=20)
    predict_message(request_id, accepted)
    predict_message(request_id, accepted + timedelta(hours=19))
    predict_message(request_id, None)  # an older producer: no accepted_at at all
    assert [created_at for _, created_at in rows_of(request_id)] == [accepted]


def test_the_client_sends_the_time_it_accepted_the_record(client: Client) -> None:
    before = datetime.now(UTC)
    request_id = client.predict(EXAMPLE_RECORD)
    client.result(request_id, timeout=30)
    [(_, created_at)] = rows_of(request_id)
    assert before <= created_at <= datetime.now(UTC)


def test_a_day_without_a_partition_gets_one_when_written(client: Client) -> None:
    day = (datetime.now(UTC) - timedelta(days=40)).date()
    with session_scope() as session:
        session.execute(text(f"DROP TABLE IF EXISTS {partitions.partition_name(day)}"))
    request_id = str(uuid.uuid4())
    accepted = partitions.day_start(day) + timedelta(hours=5)
    assert predict_message(request_id, accepted)["status"] == "OK"
    assert rows_of(request_id) == [(partitions.partition_name(day), accepted)]


def test_a_batchs_rows_carry_its_time_and_share_one_partition(client: Client) -> None:
    submission = client.submit_batch([EXAMPLE_RECORD] * 30, chunk_size=7)
    status = wait_done(client, submission.batch_id)
    assert status["done"] == 30 and status["rate_per_s"] > 0
    with session_scope() as session:
        created_at = session.execute(
            select(Batch.created_at).where(Batch.id == submission.batch_id)
        ).scalar_one()
        found = session.execute(
            text(
                "SELECT tableoid::regclass, created_at, count(*) FROM ml_request "
                "WHERE batch_id = :b GROUP BY 1, 2"
            ),
            {"b": submission.batch_id},
        ).all()
    assert [(str(p), at, n) for p, at, n in found] == [
        (partitions.partition_name(created_at.date()), created_at, 30)
    ]


# --- prune -------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
OLD = NOW - timedelta(days=100)  # pruned
RUNNING_DAY = NOW - timedelta(days=95)  # older than the cutoff, but a running test's
YOUNG = NOW - timedelta(days=10)  # kept


def row(request_id: str, at: datetime, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": request_id,
        "endpoint": "income_classifier",
        "algorithm_id": None,
        "input": EXAMPLE_RECORD,
        "response": {"request_id": request_id, "status": "OK", "label": "<=50K"},
        "label": "<=50K",
        "probability": 0.9,
        "value": None,
        "status": "OK",
        "error_code": None,
        "error_message": None,
        "latency_ms": 2.0,
        "batch_id": None,
        "batch_position": None,
        "created_at": at,
        "ab_test_id": None,
        "ab_arm": None,
    }
    return {**base, **extra}


def ab_test(session: Any, *, ended: bool, at: datetime) -> int:
    endpoint_id = session.execute(
        select(Endpoint.id).where(Endpoint.name == "income_classifier")
    ).scalar_one()
    a, b = session.execute(select(MLAlgorithm.id).order_by(MLAlgorithm.id).limit(2)).scalars()
    test = ABTest(
        endpoint_id=endpoint_id,
        title="pruned",
        created_by="tests",
        created_at=at,
        ends_at=at + timedelta(hours=1),
        ended_at=at + timedelta(hours=1) if ended else None,
        algorithm_a_id=a,
        algorithm_b_id=b,
        decision_rule="sequential",
        mode="replay" if not ended else "split",
        summary={"decision": "kept"} if ended else None,
    )
    session.add(test)
    session.flush()
    return int(test.id)


def test_prune_drops_old_days_and_keeps_a_summary_of_what_referred_to_them(
    clean_db: str,
) -> None:
    partitions.ensure_days(partitions.day_of(t) for t in (OLD, RUNNING_DAY, YOUNG))
    with session_scope() as session:
        ended = ab_test(session, ended=True, at=OLD)
        # A replay serves no traffic, so it may run beside anything: still running.
        running = ab_test(session, ended=False, at=RUNNING_DAY)
        rows = [
            *(row(f"old-{i}", OLD + timedelta(minutes=i)) for i in range(5)),
            row("old-error", OLD, status="ERROR", label=None, error_code="x"),
            *(
                row(f"old-ab-{arm}", OLD, ab_test_id=ended, ab_arm=arm, label=">50K")
                for arm in "AB"
            ),
            row("running-0", RUNNING_DAY, ab_test_id=running, ab_arm="A"),
            *(row(f"young-{i}", YOUNG) for i in range(3)),
            *(row(f"b:{i}", OLD, batch_id="b", batch_position=i, latency_ms=1.0) for i in range(4)),
        ]
        assert len(copied_ids(session, rows=rows)) == len(rows)
        session.add_all(
            [
                Feedback(request_id="old-0", label="<=50K"),  # correct
                Feedback(request_id="old-1", label=">50K"),  # wrong
                # Given before the test ended: it counts in the test's timeline.
                Feedback(request_id="old-ab-A", label=">50K", created_at=OLD),
                Feedback(request_id="young-0", label="<=50K"),
                # Early feedback for a request that never came, long ago: an orphan.
                Feedback(request_id="never", label="<=50K", created_at=OLD),
            ]
        )
        session.add(
            ABShadowAnswer(
                ab_test_id=ended,
                request_id="old-ab-A",
                algorithm_id=1,
                status="OK",
                label=">50K",
                created_at=OLD,
            )
        )

    dry = run_mlq("db", "prune", "--older-than", "90d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    would = json.loads(dry.stdout)
    assert would["dry_run"] and would["rows_dropped"] == 12
    with session_scope() as session:  # nothing changed
        assert session.execute(select(func.count()).select_from(MLRequest)).scalar_one() == 16

    report = prune(timedelta(days=90), now=NOW).as_dict()

    assert str(OLD.date()) in report["dropped_days"]
    assert report["kept_days"] == {
        str(RUNNING_DAY.date()): f"holds evidence of running A/B test(s) {running}"
    }
    assert report["rows_dropped"] == 12
    assert (report["feedback_deleted"], report["orphan_feedback_deleted"]) == (3, 1)
    assert report["shadow_answers_deleted"] == 1
    assert report["tests_frozen"] == [ended]
    with session_scope() as session:
        left = set(session.execute(select(MLRequest.id)).scalars())
        assert left == {"running-0", "young-0", "young-1", "young-2"}
        assert set(session.execute(select(Feedback.request_id)).scalars()) == {"young-0"}
        assert session.execute(select(func.count()).select_from(ABShadowAnswer)).scalar_one() == 0
        assert partitions.partition_name(OLD.date()) not in {
            partitions.partition_name(d) for d in partitions.existing_days(session)
        }
        summary = {
            (s.ab_test_id, s.ab_arm, s.batch): (
                s.requests,
                s.errors,
                s.labelled,
                s.correct,
                s.latency_ms_sum,
            )
            for s in session.execute(
                select(MLRequestSummary).where(
                    MLRequestSummary.day == partitions.day_start(OLD.date())
                )
            ).scalars()
        }
        assert summary == {
            (None, None, False): (6, 1, 2, 1, 12.0),
            (ended, "A", False): (1, 0, 1, 1, 2.0),
            (ended, "B", False): (1, 0, 0, 0, 2.0),
            (None, None, True): (4, 0, 0, 0, 4.0),
        }
        frozen = session.get(ABTest, ended)
        assert frozen is not None and frozen.summary is not None
        assert frozen.summary["decision"] == "kept"
        # Drawn before the rows went: arm A's labelled, correct request is in it.
        assert frozen.summary["timeline"][-1]["A"]["labelled"] == 1

    # Run again: nothing more goes, and the summary is not counted twice.
    again = prune(timedelta(days=90), now=NOW).as_dict()
    assert again["rows_dropped"] == 0
    with session_scope() as session:
        total = session.execute(select(func.sum(MLRequestSummary.requests))).scalar_one()
    assert total == 12


def test_rows_copied_as_text_read_back_as_written(clean_db: str) -> None:
    """The bulk write's own COPY text: escapes, nulls, unicode, numbers, times."""
    at = datetime.now(UTC)
    tricky = "tab\there\nnew line\\back slash\r\u00e9\u4e2d \\N"
    rows = [
        row(
            "copy-1",
            at,
            input={"text": tricky, "n": 1.5e-07, "big": 2**53, "nested": [None, True, {"k": "\\"}]},
            response={"label": tricky},
            label=tricky,
            probability=0.1 + 0.2,
            value=-1e300,
            status="ERROR",
            error_code="invalid_record",
            error_message=tricky,
            latency_ms=float("inf"),
            batch_id="b\tx",
            batch_position=7,
            ab_arm="B",
            ab_test_id=3,
        ),
        row("copy-2", at, probability=None, latency_ms=None),
    ]
    with session_scope() as session:
        assert copied_ids(session, rows=rows) == {"copy-1", "copy-2"}
    with session_scope() as session:
        stored = {
            r.id: r for r in session.execute(select(MLRequest).order_by(MLRequest.id)).scalars()
        }
        for written in rows:
            got = stored[written["id"]]
            for column, value in written.items():
                assert getattr(got, column) == value, column
