"""Security on the real stack: a pickled message is refused and never executed; passwords
in the URLs never reach a log or an output.

(A model file that does not match its manifest is refused at load:
tests/integration/test_worker_startup.py. Flower refuses requests without credentials:
tests/integration/test_flower.py.)
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select

from producer import Client
from producer.local_processes import LocalFlower, LocalWorker
from shared.contracts import EXAMPLE_RECORD, TASK_PREDICT
from shared.db.engine import session_scope
from shared.db.models import MLRequest
from tests.integration.conftest import run_mlq
from tests.integration.own_services import OwnRedis, free_port

pytestmark = pytest.mark.integration


class Explosive:
    """Unpickling this creates a file: proof that a payload was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickled_message_is_refused_and_never_executed(
    client: Client, worker: LocalWorker, tmp_path: Path
) -> None:
    # The payload works: unpickled here, it creates its file.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Explosive(proof)))
    assert proof.exists()

    marker = tmp_path / "executed"
    request_id = f"pickled-{uuid.uuid4()}"
    sender = Celery("attacker")
    sender.config_from_object("celeryconfig")
    sender.send_task(
        TASK_PREDICT,
        kwargs={"record": Explosive(marker), "endpoint": "income_classifier"},
        task_id=request_id,
        serializer="pickle",
    )
    # The worker goes on serving JSON messages sent after it.
    after = client.predict(EXAMPLE_RECORD)
    assert client.result(after, timeout=30)["status"] == "OK"
    deadline = time.monotonic() + 10
    log = Path(worker.log_path)
    while "pickle" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Refusing to deserialize untrusted content of type pickle" in log.read_text()
    assert not marker.exists()
    with session_scope() as session:
        assert session.scalar(select(MLRequest).where(MLRequest.id == request_id)) is None


REDIS_PASSWORD = "redis-Secret-4711"
DATABASE_PASSWORD = "pg-Secret-0815"
FLOWER_PASSWORD = "flower-Secret-2342"


def test_passwords_never_appear_in_logs_or_outputs(
    clean_db: str, artifacts_dir: Path, tmp_path: Path
) -> None:
    """A run with a password on every service: worker, beat-free CLI, Flower. Redis really
    requires its password; PostgreSQL here trusts local connections, so its password is
    sent and ignored, which is enough to see whether anything prints it."""
    redis = OwnRedis(tmp_path / "redis", appendonly=False, password=REDIS_PASSWORD).start()
    database_url = clean_db.replace("://root@", f"://root:{DATABASE_PASSWORD}@")
    assert DATABASE_PASSWORD in database_url
    env = {
        "MLQ_BROKER_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0",
        "MLQ_RESULT_BACKEND": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/1",
        "MLQ_DATABASE_URL": database_url,
        "MLQ_HOME": str(tmp_path / "home"),
        "FLOWER_BASIC_AUTH": f"admin:{FLOWER_PASSWORD}",
        "MLQ_LOG_LEVEL": "DEBUG",
    }
    app = Celery("passwords")
    app.config_from_object("celeryconfig")
    app.conf.update(broker_url=env["MLQ_BROKER_URL"], result_backend=env["MLQ_RESULT_BACKEND"])
    outputs: list[str] = []
    worker = LocalWorker(log_path=tmp_path / "worker.log", env=env, name="secrets", app=app)
    flower = LocalFlower(log_path=tmp_path / "flower.log", port=free_port(), env=env)
    try:  # Redis was started above: whatever fails from here on, stop everything
        worker.start(timeout=120)
        flower.start(timeout=60)
        records = tmp_path / "records.jsonl"
        records.write_text("\n".join(json.dumps(EXAMPLE_RECORD) for _ in range(20)) + "\n")
        for args in (
            ("predict", "--record", json.dumps(EXAMPLE_RECORD), "--wait"),
            ("batch", "submit", str(records), "--wait"),
            ("algorithms",),
            ("stats",),
            ("predict", "--record", "[1]", "--wait", "--json"),  # an error on the way
        ):
            done = run_mlq(*args, env=env)
            outputs += [done.stdout, done.stderr]
        # A wrong password gives a clear error that does not echo it either.
        wrong = {
            **env,
            "MLQ_BROKER_URL": f"redis://:wrong-{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0",
        }
        failed = run_mlq("predict", "--record", json.dumps(EXAMPLE_RECORD), env=wrong)
        assert failed.returncode != 0
        outputs += [failed.stdout, failed.stderr]
    finally:
        flower.stop()
        worker.stop()
        redis.stop()
    texts = {
        "worker log": worker.log_path.read_text(),
        "flower log": flower.log_path.read_text(),
        "redis log": (tmp_path / "redis" / "redis.log").read_text(),
        "mlq outputs": "\n".join(outputs),
    }
    assert "OK" in texts["mlq outputs"] and "mlq.predict" in texts["worker log"]
    for name, content in texts.items():
        for password in (REDIS_PASSWORD, DATABASE_PASSWORD, FLOWER_PASSWORD):
            assert password not in content, f"{password} appears in the {name}"
