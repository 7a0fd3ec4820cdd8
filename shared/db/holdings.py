"""Which worker holds which model in memory: refreshed by each worker while it runs, read
by `mlq models list` to show a model's live workers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import WorkerModel, utcnow


def record_holdings(session: Session, *, worker: str, algorithm_ids: Iterable[int]) -> None:
    """Say that ``worker`` holds exactly these algorithms now."""
    held = sorted(set(algorithm_ids))
    now = utcnow()
    session.execute(
        delete(WorkerModel).where(
            WorkerModel.worker == worker, WorkerModel.algorithm_id.not_in(held)
        )
    )
    if held:
        statement = insert(session, WorkerModel)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["worker", "algorithm_id"], set_={"seen_at": now}
            ),
            [{"worker": worker, "algorithm_id": i, "loaded_at": now, "seen_at": now} for i in held],
        )


def forget_worker(session: Session, *, worker: str) -> None:
    session.execute(delete(WorkerModel).where(WorkerModel.worker == worker))


def live_holders(session: Session, *, within: timedelta) -> dict[int, list[str]]:
    """Algorithm id to the workers that said they hold it within ``within``."""
    since: datetime = utcnow() - within
    rows = session.execute(
        select(WorkerModel.algorithm_id, WorkerModel.worker)
        .where(WorkerModel.seen_at >= since)
        .order_by(WorkerModel.worker)
    )
    holders: dict[int, list[str]] = defaultdict(list)
    for algorithm_id, worker in rows:
        holders[algorithm_id].append(worker)
    return dict(holders)
