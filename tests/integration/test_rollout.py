"""New versions go live without restarting a worker; a worker on another host gets its
models from the shared store; an isolated endpoint is served by its own workers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from sqlalchemy import text

from examples.user_models import iris
from producer import Client
from producer.local_processes import LocalWorker
from shared import queues
from shared.db.engine import get_engine
from tests.integration.conftest import run_mlq

pytestmark = pytest.mark.integration

# Quick polls, so a test sees a rollout in seconds (the default is 5 s).
FAST = {"MLQ_MODEL_POLL_SECONDS": "1"}


def add_iris(tmp_path: Path, version: str, *, seed: int, status: str = "production") -> str:
    model, features, _ = iris(n_estimators=10, seed=seed)
    path = tmp_path / f"iris-{version}.skops"
    sio.dump(model, path)
    features.head(100).to_csv(tmp_path / "sample.csv", index=False)
    done = run_mlq(
        *("models", "add", str(path), "--sample", str(tmp_path / "sample.csv")),
        *("--endpoint", "iris", "--name", "forest", "--version", version, "--status", status),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["artifact_sha256"])


def isolate(endpoint: str, *, off: bool = False) -> None:
    done = run_mlq("models", "isolate", endpoint, *(["--off"] if off else []))
    assert done.returncode == 0, done.stderr
    queues._isolated.cache_clear()  # type: ignore[attr-defined]  # this process sees it at once


def records(count: int) -> list[dict[str, Any]]:
    _, features, _ = iris()
    return [features.iloc[i % 150].to_dict() for i in range(count)]


def rows_by_hash(database: str) -> dict[str, tuple[int, int]]:
    """Per artifact hash of the answering model: (rows, error rows) for endpoint iris."""
    with get_engine(database).connect() as connection:
        found = connection.execute(
            text(
                "SELECT response->'algorithm'->>'sha256', count(*), "
                "count(*) FILTER (WHERE status = 'ERROR') FROM ml_request "
                "WHERE endpoint = 'iris' GROUP BY 1"
            )
        )
        return {sha: (rows, errors) for sha, rows, errors in found}


def test_version_2_goes_live_on_two_running_workers_without_errors_or_restarts(
    clean_db: str, tmp_path: Path, redis_client: object
) -> None:
    first = add_iris(tmp_path, "1", seed=0)
    isolate("iris")  # only these two workers take its work
    workers = [
        LocalWorker(
            log_path=tmp_path / f"w{i}.log",
            env=FAST,
            name=f"roll{i}",
            concurrency=1,
            endpoints=("iris",),
        )
        for i in (1, 2)
    ]
    for worker in workers:
        worker.start()
    pids = [w.process.pid for w in workers if w.process]
    client = Client()
    after_switch: list[str] = []
    switched = threading.Event()
    stop = threading.Event()

    def singles() -> None:
        own = Client()  # one client per thread
        for record in records(10_000):
            if stop.is_set():
                return
            request_id = own.predict(record, endpoint="iris")
            if switched.is_set():
                after_switch.append(request_id)
            time.sleep(0.01)

    sender = threading.Thread(target=singles)
    sender.start()
    try:
        batch = client.submit_batch(records(3000), endpoint="iris", chunk_size=100)
        time.sleep(1)
        second = add_iris(tmp_path, "2", seed=1)
        switched.set()
        time.sleep(4)
        stop.set()
        sender.join(30)
        for request_id in after_switch[-50:]:
            client.result(request_id, timeout=30)
        deadline = time.monotonic() + 90
        while client.batch_status(batch.batch_id)["state"] != "done":
            assert time.monotonic() < deadline, "the batch did not finish"
            time.sleep(0.2)
        assert all(w.process and w.process.poll() is None for w in workers)
        assert [w.process.pid for w in workers if w.process] == pids
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
        isolate("iris", off=True)

    counts = rows_by_hash(clean_db)
    assert set(counts) <= {first, second}
    assert sum(errors for _, errors in counts.values()) == 0, counts
    assert counts[second][0] > 0
    assert after_switch, "no single request was sent after the switch"
    with get_engine(clean_db).connect() as connection:
        answered = connection.execute(
            text(
                "SELECT response->'algorithm'->>'sha256', count(*) FROM ml_request "
                "WHERE id = ANY(:ids) GROUP BY 1"
            ),
            {"ids": after_switch},
        ).all()
    assert answered == [(second, len(after_switch))]
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in (1, 2))
    assert "recycling pool processes" in logs


def test_a_worker_on_a_new_host_gets_its_models_from_the_store(
    clean_db: str, tmp_path: Path, redis_client: object
) -> None:
    """An empty model cache and no artifacts folder: only the database has the models."""
    sha = add_iris(tmp_path, "1", seed=0)
    isolate("iris")
    cache = tmp_path / "empty-cache"
    env = {
        **FAST,
        "MLQ_MODEL_CACHE": str(cache),
        "MLQ_ARTIFACTS_DIR": str(tmp_path / "no-artifacts-here"),
        "MLQ_HOME": str(tmp_path / "host2"),
    }
    worker = LocalWorker(
        log_path=tmp_path / "host2.log",
        env=env,
        name="host2",
        endpoints=("iris",),
    )
    try:
        worker.start()
        client = Client()
        result = client.result(client.predict(records(1)[0], endpoint="iris"), timeout=60)
    finally:
        worker.stop()
        isolate("iris", off=True)
    assert result["status"] == "OK" and result["algorithm"]["sha256"] == sha
    assert [p.stat().st_size > 0 for p in cache.iterdir()] == [True]  # the one model, fetched
    log = (tmp_path / "host2.log").read_text()
    assert "fetched" in log and "from the model store" in log
    assert "predict.iris" in log  # it consumed the isolated endpoint's own queue
