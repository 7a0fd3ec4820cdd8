"""The caller's row ids of a batch (--id-column) come back beside the results, in input
order, for records scored and not scored yet alike (on SQLite)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.batches import RESULT_COLUMNS, create_batch, iter_batch_results
from shared.db.engine import make_engine
from shared.db.external_ids import record_external_ids
from shared.db.migrate import upgrade
from shared.db.models import Batch, MLRequest


def test_ids_are_joined_by_position_scored_or_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ids.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        create_batch(session, batch_id="b", endpoint="e", status=None, version=None, source=None)
        record_external_ids(session, batch_id="b", start=0, ids=["r0", None, "r2"])
        record_external_ids(session, batch_id="b", start=3, ids=["r3", "r4"])
        # Sent again (a resubmission): nothing is written twice, nothing replaced.
        record_external_ids(session, batch_id="b", start=3, ids=["other", "r4"])
        # A batch's rows carry its created_at (their partition key), as workers write them.
        created_at = session.execute(select(Batch.created_at)).scalar_one()
        for position in (1, 3):
            session.add(
                MLRequest(
                    id=f"b:{position}",
                    endpoint="e",
                    input={},
                    response={},
                    status="OK",
                    label="<=50K",
                    batch_id="b",
                    batch_position=position,
                    created_at=created_at,
                )
            )
    with Session(engine) as session:
        rows = [
            dict(zip(RESULT_COLUMNS, row, strict=True))
            for row in iter_batch_results(session, batch_id="b", total=6)
        ]
    engine.dispose()
    assert [(r["position"], r["external_id"], r["status"]) for r in rows] == [
        (0, "r0", "QUEUED"),
        (1, None, "OK"),
        (2, "r2", "QUEUED"),
        (3, "r3", "OK"),
        (4, "r4", "QUEUED"),
        (5, None, "QUEUED"),
    ]
    assert rows[3]["request_id"] == "b:3" and rows[3]["label"] == "<=50K"
