"""Nothing hangs and nothing prints a traceback when a worker or a service is missing:
each command says in one line which queue has no consumer or which service cannot be
reached (password hidden), within a couple of seconds, and exits 5."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

from producer import Client
from producer.consumers import ANSWER_TIMEOUT_S, consuming_worker
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, QUEUE_FEEDBACK
from shared.db.migrate import head_revision
from tests.conftest import POSTGRES_ADMIN_URL, TEST_DATABASE
from tests.integration.conftest import run_mlq
from tests.integration.own_services import OwnRedis, free_port

pytestmark = pytest.mark.integration

RECORD = json.dumps(EXAMPLE_RECORD)
# The CLI's own start takes 1-2 s on a busy machine; the wait for the worker adds about
# one and a half (producer/consumers.py: a first look, then the question).
PROMPT_S = 8


def one_line(done: Any, exit_code: int, text: str) -> None:
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and text in lines[-1], done.stderr


def test_a_worker_that_consumes_the_queue_answers_at_once(client: Client) -> None:
    started = time.monotonic()
    assert (consuming_worker(app, "predict") or "").startswith("tests@")
    assert time.monotonic() - started < ANSWER_TIMEOUT_S  # the first reply ended it
    assert consuming_worker(app, "a-queue-nobody-consumes") is None


@pytest.fixture
def no_worker(clean_db: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The variables of a broker and result backend (a Redis of this test's own) that no
    worker listens to, beside this run's migrated database."""
    own = OwnRedis(tmp_path / "redis", appendonly=False).start()
    try:
        yield {"MLQ_BROKER_URL": f"{own.url}/0", "MLQ_RESULT_BACKEND": f"{own.url}/1"}
    finally:
        own.stop()


@pytest.mark.parametrize(
    ("args", "queue"),
    [
        (["predict", "--record", RECORD, "--wait"], "predict"),
        (["predict", "--record", RECORD, "--wait", "--json"], "predict"),
        (["batch", "submit", "{csv}", "--wait"], "batch"),
        (["feedback", "some-request", "<=50K"], "feedback"),
    ],
    ids=["predict --wait", "predict --wait --json", "batch submit --wait", "feedback"],
)
def test_a_queue_without_a_worker_is_named_at_once(
    no_worker: dict[str, str], tmp_path: Path, args: list[str], queue: str
) -> None:
    records = tmp_path / "records.csv"
    records.write_text(
        ",".join(EXAMPLE_RECORD) + "\n" + ",".join(map(str, EXAMPLE_RECORD.values()))
    )
    started = time.monotonic()
    done = run_mlq(*[a.replace("{csv}", str(records)) for a in args], env=no_worker)
    took = time.monotonic() - started
    one_line(
        done, 5, f"no worker consumes queue {queue!r}: start one with celery -A workers worker"
    )
    assert took < PROMPT_S, took
    if "--json" in args:
        assert json.loads(done.stdout)["error"]["code"] == "no_worker"
    if queue == QUEUE_FEEDBACK:  # asked before sending: no label waits for a worker
        assert redis.Redis.from_url(no_worker["MLQ_BROKER_URL"]).llen(queue) == 0


def test_result_wait_names_the_missing_worker_and_result_alone_says_queued(
    no_worker: dict[str, str],
) -> None:
    sent = run_mlq("predict", "--record", RECORD, env=no_worker)
    assert sent.returncode == 0, sent.stderr
    request_id = sent.stdout.strip()  # the bare id: something was queued
    now = run_mlq("result", request_id, "--json", env=no_worker)
    assert now.returncode == 3 and json.loads(now.stdout)["status"] == "QUEUED"
    waited = run_mlq("result", request_id, "--wait", env=no_worker)
    one_line(waited, 5, "no worker consumes queue 'predict'")


@pytest.mark.parametrize(
    "args", [["algorithms"], ["batch", "status", "b1"], ["stats", "--json"]], ids=str
)
def test_a_database_that_is_down_is_one_line_without_its_password(
    clean_db: str, args: list[str]
) -> None:
    closed = free_port()
    env = {"MLQ_DATABASE_URL": f"postgresql://mlq:s3cret@127.0.0.1:{closed}/mlq"}
    done = run_mlq(*args, env=env)
    one_line(
        done, 5, f"cannot reach the database at postgresql+psycopg://mlq:***@127.0.0.1:{closed}"
    )
    assert "s3cret" not in done.stderr + done.stdout
    with_debug = run_mlq("--debug", *args, env=env)
    assert with_debug.returncode == 5 and "Traceback" in with_debug.stderr


def test_an_unmigrated_database_says_to_upgrade(clean_db: str) -> None:
    fresh = f"{TEST_DATABASE}_fresh"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{fresh}"'))
        connection.execute(text(f'CREATE DATABASE "{fresh}"'))
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{fresh}"
        done = run_mlq("algorithms", env={"MLQ_DATABASE_URL": url})
        one_line(
            done,
            5,
            f"is at schema revision none, not {head_revision()}: run `mlq db upgrade`",
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
        admin.dispose()
