"""A worker refuses to start on a model file that does not match its manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from producer.local_processes import LocalWorker, WorkerStartError

pytestmark = pytest.mark.integration


def test_a_tampered_model_stops_the_worker_with_a_clear_error(
    database: str, artifacts_dir: Path, tmp_path: Path, redis_client: object
) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts_dir, copy)
    model = next(copy.glob("*/random_forest-*/model.joblib"))
    model.write_bytes(model.read_bytes()[:-10] + b"tampered!!")
    worker = LocalWorker(
        log_path=tmp_path / "worker.log", env={"MLQ_ARTIFACTS_DIR": str(copy)}, name="tampered"
    )
    with pytest.raises(WorkerStartError, match="exited with code 1"):
        worker.start(timeout=60)
    log = (tmp_path / "worker.log").read_text()
    assert "does not match its manifest" in log
    assert "refusing to load it" in log


def test_a_worker_whose_database_is_down_does_not_serve(
    database: str, artifacts_dir: Path, tmp_path: Path, redis_client: object
) -> None:
    worker = LocalWorker(
        log_path=tmp_path / "worker.log",
        name="nodb",
        env={"MLQ_DATABASE_URL": "postgresql://root@127.0.0.1:1/nowhere"},
    )
    with pytest.raises(WorkerStartError, match="exited with code 1"):
        worker.start(timeout=60)
    assert "worker cannot start" in (tmp_path / "worker.log").read_text()
