"""A worker refuses a model whose file fails its hash, and one without its database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from producer.local_processes import LocalWorker, WorkerStartError
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, TASK_PREDICT
from shared.db.engine import session_scope
from shared.db.models import ModelBlobChunk
from shared.registry import select_algorithm

pytestmark = pytest.mark.integration


def test_a_tampered_model_in_the_store_is_refused_and_the_rest_served(
    clean_db: str, tmp_path: Path, redis_client: object
) -> None:
    with session_scope() as session:
        production = select_algorithm(session, endpoint="income_classifier")
        sha = production.serving_sha256
        where = (ModelBlobChunk.sha256 == sha, ModelBlobChunk.seq == 0)
        original = session.execute(select(ModelBlobChunk.data).where(*where)).scalar_one()
        session.execute(
            update(ModelBlobChunk).where(*where).values(data=original[:-10] + b"tampered!!")
        )
    try:
        # An empty cache: the worker must fetch every model from the store, and check it.
        env = {"MLQ_MODEL_CACHE": str(tmp_path / "cache")}
        with LocalWorker(log_path=tmp_path / "worker.log", env=env, name="tampered") as worker:
            # Through a queue only this worker consumes (the suite's worker holds the models).
            def ask(**selection: str) -> Any:
                kwargs = {"record": EXAMPLE_RECORD, "endpoint": "income_classifier", **selection}
                sent = app.send_task(TASK_PREDICT, kwargs=kwargs, queue=worker.private_queue)
                return sent.get(timeout=60)

            refused, served = ask(), ask(status="testing")
        log = (tmp_path / "worker.log").read_text()
        assert "does not match its hash" in log and "refusing it" in log
        assert refused["status"] == "ERROR" and refused["error"]["code"] == "artifact"
        assert served["status"] == "OK" and served["algorithm"]["name"] == "extra trees"
        assert not (tmp_path / "cache" / str(sha)).exists()
    finally:
        with session_scope() as session:
            session.execute(update(ModelBlobChunk).where(*where).values(data=original))


def test_a_worker_whose_database_is_down_does_not_serve(
    database: str, tmp_path: Path, redis_client: object, builtin_bundles: list[tuple[str, Any]]
) -> None:
    worker = LocalWorker(
        log_path=tmp_path / "worker.log",
        name="nodb",
        env={"MLQ_DATABASE_URL": "postgresql://root@127.0.0.1:1/nowhere"},
    )
    with pytest.raises(WorkerStartError, match="exited with code 1"):
        worker.start(timeout=60)
    assert "worker cannot start" in (tmp_path / "worker.log").read_text()
