"""Faults on the real stack: processes killed, PostgreSQL and the broker restarted, a
hard time limit, a poison message, a broker that cannot be reached. Each test runs on a
PostgreSQL and a broker of its own (tests/integration/own_services.py), once with Redis
and once with RabbitMQ as the broker (the ``broker_kind`` fixture,
tests/integration/conftest.py), with beat running the reconciler and the default
recovery settings (a 45 s visibility timeout with leases renewed every 10 s), and checks
that every record ends with exactly one row, written once: workers count each request's
scorings and writes (MLQ_TEST_COUNTS_URL), since a row keyed by its request id can never
show a second one. No test resubmits anything.

docs/reliability.md publishes what these tests do and what they measured.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_module
from celery import Celery
from sqlalchemy import Engine, create_engine, text

from producer.local_processes import LocalBeat, LocalWorker
from shared.broker import broker_options
from shared.contracts import (
    EXAMPLE_RECORD,
    QUEUE_BATCH,
    QUEUE_CONTROL,
    QUEUE_PREDICT,
    QUEUES,
    TASK_PREDICT,
)
from shared.settings import get_settings
from tests.integration.conftest import run_mlq, start_own_broker
from tests.integration.own_services import OwnBroker, OwnPostgres, OwnRedis, free_port
from workers.training import ADULT_DATA, TARGET, read_adult

pytestmark = pytest.mark.integration

RECORDS = 30_000
CHUNK = 1000
# Workers take the control queue too: beat's reconciler runs there.
WORK_QUEUES = QUEUES
BATCH_WORK = (QUEUE_BATCH, QUEUE_CONTROL)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    directory = Path(tempfile.mkdtemp(prefix="mlq-faults-pg-"))
    try:
        postgres = OwnPostgres(directory).start()
    except (RuntimeError, OSError) as error:
        pytest.fail(f"cannot start a PostgreSQL of the tests' own: {error}", pytrace=False)
    yield postgres
    postgres.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def counter_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    """Where workers count scorings and writes: a Redis no test restarts."""
    counters = OwnRedis(tmp_path_factory.mktemp("counters"), appendonly=False).start()
    yield counters
    counters.stop()


@pytest.fixture(scope="module")
def records_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RECORDS rows of the Adult data (features only), as a user's CSV file."""
    frame = read_adult(ADULT_DATA).drop(columns=[TARGET])
    repeats = -(-RECORDS // len(frame))
    path = tmp_path_factory.mktemp("faults") / "records.csv"
    frame.loc[frame.index.repeat(repeats)].head(RECORDS).to_csv(path, index=False)
    return path


class Stack:
    """Settings for the worker and `mlq` processes of one test, on its own services."""

    def __init__(
        self,
        postgres: OwnPostgres,
        services: OwnBroker,
        home: Path,
        artifacts: Path,
        counters: str,
    ):
        self.postgres = postgres
        self.kind = services.kind  # "redis" or "rabbitmq"
        self.broker = services.broker
        self.backend = services.backend  # Redis, the result backend (the broker too on redis)
        self.home = home
        self.env = {
            "MLQ_BROKER_URL": services.broker_url,
            "MLQ_RESULT_BACKEND": services.backend_url,
            "MLQ_DATABASE_URL": postgres.url,
            "MLQ_HOME": str(home),
            "MLQ_ARTIFACTS_DIR": str(artifacts),
            "MLQ_TEST_COUNTS_URL": counters,
        }
        self.app = Celery("faults")
        self.app.config_from_object("celeryconfig")
        # Queues declared as the worker declares them on this broker (shared/broker.py).
        self.app.conf.update(broker_options(get_settings(), services.broker_url).as_celery())
        self.app.conf.update(result_backend=self.env["MLQ_RESULT_BACKEND"])
        self.engine: Engine = create_engine(postgres.url, pool_pre_ping=True)
        self.workers: list[LocalWorker] = []
        self.beats: list[LocalBeat] = []
        self.submitted_at = time.monotonic()

    def beat(self) -> LocalBeat:
        """Celery beat, sending `mlq.reconcile` every MLQ_RECONCILE_SECONDS."""
        beat = LocalBeat(log_path=self.home / "beat.log", env=self.env)
        self.beats.append(beat)
        beat.start(timeout=60)
        return beat

    def counted(self, kind: str) -> dict[str, int]:
        """Request id to how many times a worker scored ("scored") or wrote ("written") it."""
        client = redis_module.Redis.from_url(self.env["MLQ_TEST_COUNTS_URL"])
        try:
            return {k.decode(): int(v) for k, v in client.hgetall(kind).items()}
        finally:
            client.close()

    def worker(
        self, name: str, *, queues: tuple[str, ...] = WORK_QUEUES, app_module: str = "workers"
    ) -> LocalWorker:
        worker = LocalWorker(
            log_path=self.home / f"{name}.log",
            concurrency=2,
            queues=queues,
            env=self.env,
            name=name,
            app=self.app,
        )
        worker.command[worker.command.index("-A") + 1] = app_module
        self.workers.append(worker)
        return worker.start(timeout=120)

    def mlq(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Any:
        return run_mlq(*args, env={**self.env, **(env or {})}, timeout=timeout)

    def submit(self, path: Path, batch_id: str) -> None:
        self.submitted_at = time.monotonic()
        done = self.mlq(
            "batch", "submit", str(path), "--batch-id", batch_id, "--chunk-size", str(CHUNK)
        )
        assert done.returncode == 0, done.stderr

    def query(self, sql: str, **params: object) -> Any:
        """The one row a query returns."""
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).one()

    def counts(self, batch_id: str) -> tuple[int, int, int]:
        """(rows, distinct positions, rows with status OK) of a batch."""
        row = self.query(
            "SELECT count(*), count(DISTINCT batch_position),"
            " count(*) FILTER (WHERE status = 'OK') FROM ml_request WHERE batch_id = :b",
            b=batch_id,
        )
        return int(row[0]), int(row[1]), int(row[2])

    def wait_rows(self, batch_id: str, at_least: int, timeout: float = 180) -> tuple[int, int, int]:
        deadline = time.monotonic() + timeout
        while (counts := self.counts(batch_id))[0] < at_least:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return counts

    def assert_complete(self, batch_id: str, total: int = RECORDS) -> None:
        """Every record has exactly one row, positions 0..total-1, none failed."""
        rows, positions, ok = self.wait_rows(batch_id, total)
        time.sleep(1)  # anything still running that would write a row twice, would now
        rows, positions, ok = self.counts(batch_id)
        assert (rows, positions, ok) == (total, total, total)
        span = self.query(
            "SELECT min(batch_position), max(batch_position) FROM ml_request WHERE batch_id = :b",
            b=batch_id,
        )
        assert tuple(span) == (0, total - 1)
        ids = [f"{batch_id}:{i}" for i in range(total)]
        written, scored = self.counted("written"), self.counted("scored")
        # Each row was written once (a second write of one would be refused by the key
        # and never show in the rows), and every record was scored.
        assert [written.get(i, 0) for i in ids] == [1] * total
        assert min(scored.get(i, 0) for i in ids) >= 1
        twice = sum(1 for i in ids if scored.get(i, 0) > 1)
        logs = self.logs()
        redelivered = logs.count("): redelivered, delivery")
        resent = logs.count("sending it again")
        # docs/reliability.md quotes these lines (pytest -s prints them).
        print(
            f"\n[reliability] {batch_id}: records {total}, rows {rows}, distinct positions "
            f"{positions}, OK {ok}, lost {total - positions}, written twice 0, scored twice "
            f"{twice}, redeliveries {redelivered}, reconciler resends {resent}, "
            f"(last) submit to every row written {time.monotonic() - self.submitted_at - 1:.1f} s"
        )

    def logs(self) -> str:
        every = [*self.workers, *self.beats]
        return "".join(p.log_path.read_text(errors="replace") for p in every)

    def stop(self) -> None:
        for beat in self.beats:
            beat.stop()
        for worker in self.workers:
            worker.stop()
            if worker.process and worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGKILL)
        self.engine.dispose()


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    own_postgres: OwnPostgres,
    counter_redis: OwnRedis,
    artifacts_dir: Path,
    tmp_path: Path,
    broker_kind: str,
) -> Iterator[Stack]:
    appendonly = bool(getattr(request, "param", False))
    # RabbitMQ takes seconds to start: it does while the database is prepared.
    services = start_own_broker(broker_kind, tmp_path, appendonly=appendonly, wait=False)
    counters = f"{counter_redis.url}/0"
    redis_module.Redis.from_url(counters).flushdb()
    stack = Stack(own_postgres, services, tmp_path, artifacts_dir, counters)
    try:
        migrated = stack.mlq("db", "upgrade")
        assert migrated.returncode == 0, migrated.stderr
        registered = stack.mlq("train")  # the trained bundles, registered: no training
        assert registered.returncode == 0, registered.stderr
        services.wait()
        with stack.engine.begin() as connection:
            connection.execute(
                text(
                    "TRUNCATE ml_request, batch, task_delivery, accepted_request, batch_chunk,"
                    " worker_lease, dead_letter"
                )
            )
        yield stack
    finally:
        stack.stop()
        services.stop()


def pool_children(worker: LocalWorker) -> list[int]:
    assert worker.process is not None
    children = Path(f"/proc/{worker.process.pid}/task/{worker.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


def test_pool_processes_killed_mid_batch_lose_and_double_nothing(
    stack: Stack, records_csv: Path
) -> None:
    worker = stack.worker("kill-child", queues=BATCH_WORK)
    stack.submit(records_csv, "kill-child")
    stack.wait_rows("kill-child", 3_000, timeout=60)
    # Kill pool processes until two of them died holding a chunk ("Job" in the pool's
    # report); one killed between two chunks proves nothing, so keep at it.
    kills = 0
    while worker.log_path.read_text().count("Worker exited prematurely: signal 9") < 2:
        assert stack.counts("kill-child")[0] < RECORDS, "the batch ended before two kills hit"
        os.kill(pool_children(worker)[0], signal.SIGKILL)
        kills += 1
        time.sleep(0.4)
    stack.assert_complete("kill-child")
    log = worker.log_path.read_text()
    print(f"[reliability] kill-child: {kills} SIGKILLs, 2 of them reported a lost job")
    # The chunks the killed processes held came back and were finished elsewhere.
    assert re.search(r"redelivered, delivery 2", log)
    assert worker.process is not None and worker.process.poll() is None


def test_the_whole_worker_killed_mid_batch_is_running_again_within_60_s(
    stack: Stack, records_csv: Path
) -> None:
    """Default settings: nobody resubmits; the dead worker's chunks come back (leases no
    longer renewed, 45 s visibility timeout) and whatever it had popped but not recorded
    (kombu's window, celery#7950) is sent again by the reconciler."""
    stack.beat()
    first = stack.worker("kill-all", queues=BATCH_WORK)
    stack.submit(records_csv, "kill-all")
    stack.wait_rows("kill-all", 6_000, timeout=60)
    assert first.process is not None
    os.killpg(first.process.pid, signal.SIGKILL)  # parent and pool: nobody re-queues
    killed_at = time.monotonic()
    first.process.wait()
    rows_at_kill = stack.counts("kill-all")[0]
    assert rows_at_kill < RECORDS
    second = stack.worker("kill-all-2", queues=BATCH_WORK)
    deadline = killed_at + 90
    while "redelivered" not in second.log_path.read_text() and "sending it again" not in (
        stack.logs()
    ):
        assert time.monotonic() < deadline, "nothing the dead worker held came back in 90 s"
        time.sleep(0.2)
    running_again = time.monotonic() - killed_at
    print(
        f"[reliability] kill-all: {rows_at_kill} rows when killed; held work running "
        f"again {running_again:.1f} s after the kill"
    )
    stack.assert_complete("kill-all")
    assert running_again <= 60


# Sends single predictions as a user's program would (Client.predict), one id a line.
SENDER = """
import sys, time
from producer import Client
from shared.contracts import EXAMPLE_RECORD
client = Client()
for _ in range(int(sys.argv[1])):
    print(client.predict(EXAMPLE_RECORD), flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.timeout(600)
def test_twenty_whole_worker_kills_over_singles_and_batches_lose_nothing(
    stack: Stack, records_csv: Path
) -> None:
    """Two workers, each killed whole (SIGKILL to its process group) at random moments,
    20 kills in all, while a program sends single predictions and two batches go in;
    each dead worker is replaced at once. Nobody resubmits: every accepted request ends
    with exactly one row, written once."""
    stack.beat()
    slots = [stack.worker("many-0"), stack.worker("many-1")]
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, "500", "0.08"],
        env={**os.environ, **stack.env},
        stdout=subprocess.PIPE,
        text=True,
    )
    batches = threading.Thread(
        target=lambda: [stack.submit(records_csv, f"many-{i}") for i in range(2)]
    )
    batches.start()
    rng = random.Random(20)
    kills = 0
    while kills < 20:
        time.sleep(rng.uniform(0.2, 1.5))
        victim = slots[kills % 2]
        assert victim.process is not None
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        kills += 1
        started = time.monotonic()
        slots[kills % 2 - 1] = stack.worker(f"many-{kills % 2 - 1}-{kills}")
        print(f"kill {kills}: replaced in {time.monotonic() - started:.1f} s", flush=True)
    last_kill = time.monotonic()
    singles = [line.strip() for line in sender.communicate(timeout=300)[0].splitlines()]
    assert sender.returncode == 0 and len(singles) == 500
    batches.join(timeout=300)
    for i in range(2):
        stack.assert_complete(f"many-{i}")
    deadline = time.monotonic() + 180
    while (
        found := stack.query("SELECT count(*) FROM ml_request WHERE id = ANY(:ids)", ids=singles)[0]
    ) < len(singles):
        assert time.monotonic() < deadline, f"{len(singles) - found} single requests lost"
        time.sleep(0.2)
    recovered = time.monotonic() - last_kill
    written, scored = stack.counted("written"), stack.counted("scored")
    assert [written.get(i, 0) for i in singles] == [1] * len(singles)
    twice = sum(1 for i in singles if scored.get(i, 0) > 1)
    logs = stack.logs()
    print(
        f"[reliability] many-kills: {kills} whole-worker kills; singles accepted "
        f"{len(singles)}, rows {found}, lost 0, written twice 0, scored twice {twice}; "
        f"reconciler resends {logs.count('sending it again')}, redeliveries "
        f"{logs.count('): redelivered, delivery')}; last kill to every row {recovered:.1f} s"
    )


def test_postgres_restarted_mid_batch_is_retried_until_the_batch_completes(
    stack: Stack, records_csv: Path
) -> None:
    worker = stack.worker("pg-restart", queues=BATCH_WORK)
    stack.submit(records_csv, "pg-restart")
    stack.wait_rows("pg-restart", 3_000, timeout=60)
    stack.postgres.restart(down_for=3)
    stack.assert_complete("pg-restart")
    log = worker.log_path.read_text()
    assert "Retry in" in log  # tasks met the outage and were retried with backoff
    print(f"[reliability] pg-restart: {log.count('Retry in')} task retries during the outage")


@pytest.mark.parametrize("stack", [True], indirect=True)
def test_redis_restarted_with_appendonly_keeps_queued_work(stack: Stack, records_csv: Path) -> None:
    stack.submit(records_csv, "aof")  # queued: no worker yet
    stack.broker.restart()  # RabbitMQ: quorum queues are on disk, always
    stack.worker("aof", queues=BATCH_WORK)
    stack.assert_complete("aof")


def test_redis_restarted_without_persistence_the_reconciler_finishes_the_batch(
    stack: Stack, records_csv: Path
) -> None:
    """Every queued chunk is gone with Redis' memory; the ledger kept them: no resubmit."""
    stack.beat()
    worker = stack.worker("no-aof", queues=BATCH_WORK)
    stack.submit(records_csv, "no-aof")
    stack.wait_rows("no-aof", 3_000, timeout=60)
    stack.broker.restart()  # Redis: every queued chunk is gone (RabbitMQ: none is)
    restarted_at = time.monotonic()
    time.sleep(3)
    before = stack.counts("no-aof")[0]
    assert before < RECORDS
    print(f"[reliability] no-aof ({stack.kind}): {before} rows when the broker restarted")
    stack.assert_complete("no-aof")
    print(f"[reliability] no-aof: complete {time.monotonic() - restarted_at:.1f} s after it")
    if stack.kind == "redis":  # what Redis lost came back from the ledger
        assert "sending it again" in stack.logs()
    # Chunks already written were kept, not rewritten (assert_complete counted writes).
    assert "no-aof" in worker.log_path.read_text()


@pytest.mark.parametrize("ledger", ["on", "off"])
def test_work_killed_at_its_hard_time_limit_is_sent_again(
    stack: Stack, tmp_path: Path, ledger: str
) -> None:
    """Celery acknowledges a task killed at its hard time limit: the message is gone.
    The reconciler sends the work again from the ledger; with MLQ_LEDGER=off nothing
    does, and the same check fails (no row)."""
    stack.env.update(
        MLQ_LEDGER=ledger,
        MLQ_TASK_TIME_LIMIT="4",
        MLQ_SOFT_TIME_LIMIT="3",
        # Short here so that the test is short: the reconciler's defaults are 10 s / 15 s.
        MLQ_RECONCILE_SECONDS="1",
        MLQ_RECONCILE_AFTER="2",
        MLQ_LEASE_SECONDS="1",
    )
    stack.beat()
    worker = stack.worker(
        "slow", queues=(QUEUE_PREDICT, *BATCH_WORK), app_module="tests.integration.slow_worker"
    )
    single = stack.mlq(
        "predict", "--record", json.dumps(EXAMPLE_RECORD), "--request-id", "slow-single"
    )
    assert single.returncode == 0, single.stderr
    small = tmp_path / "small.csv"
    read_adult(ADULT_DATA).drop(columns=[TARGET]).head(3).to_csv(small, index=False)
    stack.submit(small, "slow-batch")
    ids = ["slow-single", "slow-batch:0", "slow-batch:1", "slow-batch:2"]
    deadline = time.monotonic() + (40 if ledger == "on" else 20)
    while time.monotonic() < deadline:
        found = stack.query("SELECT count(*) FROM ml_request WHERE id LIKE 'slow-%'")[0]
        if found == len(ids):
            break
        time.sleep(0.3)
    log = worker.log_path.read_text()
    assert log.count("TimeLimitExceeded") >= 2  # both were killed at the hard limit
    if ledger == "off":
        assert found == 0  # lost for good: this is the check failing
        return
    assert found == len(ids)
    written = stack.counted("written")
    assert [written.get(i) for i in ids] == [1] * len(ids)
    assert stack.logs().count("sending it again") >= 2
    print(
        f"[reliability] hard-limit: {len(ids)} records killed at the hard time limit, "
        f"{found} rows, each written once, resent by the reconciler"
    )


def test_a_poison_message_is_given_up_after_a_bounded_number_of_deliveries(
    stack: Stack, tmp_path: Path
) -> None:
    worker = stack.worker(
        "poison", queues=(QUEUE_PREDICT, *BATCH_WORK), app_module="tests.integration.poison_worker"
    )
    stack.app.send_task(
        TASK_PREDICT,
        kwargs={
            "record": {"age": 37},
            "endpoint": "income_classifier",
            "request_id": "poison-single",
        },
        task_id="poison-single",
    )
    small = tmp_path / "small.csv"
    read_adult(ADULT_DATA).drop(columns=[TARGET]).head(2).to_csv(small, index=False)
    stack.submit(small, "poison-batch")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if stack.query("SELECT count(*) FROM ml_request WHERE id LIKE 'poison-%'")[0] == 3:
            break
        time.sleep(0.2)
    with stack.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, status, error_code, error_message FROM ml_request"
                " WHERE id LIKE 'poison-%' ORDER BY id"
            )
        ).all()
        deliveries = dict(
            connection.execute(text("SELECT task_id, redeliveries FROM task_delivery")).all()
        )
    assert [(r.id, r.status, r.error_code) for r in rows] == [
        ("poison-batch:0", "ERROR", "poison_message"),
        ("poison-batch:1", "ERROR", "poison_message"),
        ("poison-single", "ERROR", "poison_message"),
    ]
    assert "given up after 3 deliveries" in rows[0].error_message
    # Killed three times (the default MLQ_MAX_DELIVERIES), given up on the fourth; the
    # count is cleared once a message is given up (or finishes), so a reused id starts
    # afresh.
    log = worker.log_path.read_text()
    assert log.count("exited with 'signal 9 (SIGKILL)'") == 6
    for task_id in ("poison-single", "poison-batch:chunk:0"):
        assert f"task {task_id} (" in log and "delivery 4" in log
    assert log.count("): given up after 3 deliveries") == 2
    assert deliveries == {}
    # Each given-up message is a dead letter, listed for replay.
    letters = stack.mlq("dead-letters", "list", "--json")
    assert letters.returncode == 0, letters.stderr
    listed = json.loads(letters.stdout)
    assert sorted((x["task_id"], x["error_code"], x["records"]) for x in listed) == [
        ("poison-batch:chunk:0", "poison_message", 2),
        ("poison-single", "poison_message", 1),
    ]
    # The worker still serves: a good record goes through.
    good = stack.mlq("predict", "--record", json.dumps(EXAMPLE_RECORD), "--wait", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["status"] == "OK"


def test_an_unreachable_broker_fails_fast_and_says_what_was_sent(
    stack: Stack, records_csv: Path
) -> None:
    stack.env["MLQ_SEND_TIMEOUT"] = "2"  # the bound the user sets
    closed = free_port()  # nothing listens there: the broker is down, the backend is up
    url = {"redis": "redis://:{}@127.0.0.1:{}/0", "rabbitmq": "amqp://guest:{}@127.0.0.1:{}//"}
    broker_down = stack.mlq(
        "predict",
        "--record",
        json.dumps(EXAMPLE_RECORD),
        env={"MLQ_BROKER_URL": url[stack.kind].format("secret", closed)},
    )
    assert broker_down.returncode == 5  # a service is unavailable
    last_line = broker_down.stderr.strip().splitlines()[-1]
    assert f"cannot reach the broker at {url[stack.kind].format('***', closed)}" in last_line
    assert "secret" not in broker_down.stderr
    stack.broker.stop()  # now the broker and the result backend are both down
    stack.backend.stop()
    started = time.monotonic()
    single = stack.mlq("predict", "--record", json.dumps(EXAMPLE_RECORD))
    took = time.monotonic() - started
    assert single.returncode == 5
    last_line = single.stderr.strip().splitlines()[-1]
    assert "cannot reach the" in last_line  # the broker or the result backend, by port:
    assert any(f"127.0.0.1:{s.port}" in last_line for s in (stack.broker, stack.backend))
    assert "tried for 2 s (MLQ_SEND_TIMEOUT)" in last_line
    assert "Traceback" not in single.stderr
    assert took < 10
    # A batch's endpoint is checked in the registry before anything is sent: register
    # the models as compose's one-shot step does (no worker has started on this stack).
    assert stack.mlq("train").returncode == 0
    batch = stack.mlq("batch", "submit", str(records_csv), "--batch-id", "unreachable")
    assert batch.returncode == 5
    assert "sending stopped after 0 records" in batch.stderr
    assert "submit the same input again with batch id unreachable" in batch.stderr
    print(f"\n[reliability] unreachable: mlq predict failed after {took:.1f} s: {last_line}")


@pytest.mark.parametrize("broker_kind", ["rabbitmq"])
def test_rabbitmq_moves_a_message_past_its_delivery_limit_to_the_dead_letter_queue(
    stack: Stack,
) -> None:
    """The broker's own bound (MLQ_BROKER_DELIVERY_LIMIT, a quorum queue's
    x-delivery-limit): a message that kills its process before the worker's bound can
    count it is handed out a bounded number of times, then kept in mlq.dead-letter (not
    dropped, not looping); the worker keeps serving."""
    from shared.broker import dead_letter_queue
    from tests.integration.own_services import OwnRabbit

    assert isinstance(stack.broker, OwnRabbit)
    # The lowest bounds, so that the test is short: the queues are declared with them.
    limit = 1
    stack.env.update(MLQ_MAX_DELIVERIES="1", MLQ_BROKER_DELIVERY_LIMIT=str(limit))
    bounded = get_settings().model_copy(update={"broker_delivery_limit": limit})
    stack.app.conf.update(broker_options(bounded, stack.env["MLQ_BROKER_URL"]).as_celery())
    worker = stack.worker(
        "deadletter", queues=(QUEUE_PREDICT,), app_module="tests.integration.poison_worker"
    )
    record = {"record": EXAMPLE_RECORD, "endpoint": "income_classifier"}
    stack.app.send_task(
        TASK_PREDICT, kwargs={**record, "request_id": "deadletter-1"}, task_id="deadletter-1"
    )
    deadline = time.monotonic() + 90
    while stack.broker.queue_depth("mlq.dead-letter") < 1:
        assert time.monotonic() < deadline, "the message never reached the dead-letter queue"
        time.sleep(0.5)
    kills = worker.log_path.read_text().count("exited with 'signal 9 (SIGKILL)'")
    assert kills == limit + 1  # handed out once, then returned `limit` times at most
    assert stack.broker.queue_depth(QUEUE_PREDICT) == 0
    with Celery(broker=stack.broker.url).connection_for_read() as connection:
        message = connection.SimpleQueue(dead_letter_queue()).get(timeout=5)
        assert message.headers["id"] == "deadletter-1"
        assert message.headers["x-death"][0]["queue"] == QUEUE_PREDICT
        message.ack()
    # No row was written for it: the dead-letter queue is where it is, for an operator.
    assert stack.query("SELECT count(*) FROM ml_request WHERE id = 'deadletter-1'")[0] == 0
    good = stack.mlq("predict", "--record", json.dumps(EXAMPLE_RECORD), "--wait", "--json")
    assert good.returncode == 0, good.stderr
    print(f"\n[reliability] dead-letter: {kills} deliveries (all killed), then mlq.dead-letter")
