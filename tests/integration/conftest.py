"""Fixtures for tests against the real Redis, PostgreSQL and worker processes.

A missing service fails the run in CI (CI=true) and skips locally, never silently:
the skip says which service and how to start it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.conftest import (
    BACKEND_DB,
    BROKER_DB,
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    TEST_DATABASE,
    TEST_HOME,
)
from tests.integration.own_services import OwnBroker

SERVICE_HINT = "run `bash scripts/services.sh` to start the machine's PostgreSQL and Redis"


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); {SERVICE_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# The brokers that the fault suite (tests/integration/test_faults.py) runs every test on;
# MLQ_TEST_BROKERS=redis narrows a local run (CI runs both).
BROKERS = tuple(
    kind for kind in os.environ.get("MLQ_TEST_BROKERS", "redis,rabbitmq").split(",") if kind
)


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker a test's own services use: "redis" or "rabbitmq"."""
    return str(request.param)


def start_own_broker(
    kind: str,
    directory: Path,
    *,
    appendonly: bool = False,
    host: str = "127.0.0.1",
    wait: bool = True,
    heartbeat: int | None = None,
) -> OwnBroker:
    """A broker and a result backend of the test's own (never the machine's shared ones,
    which other runs use): a missing server fails the run in CI, and skips locally
    saying which. ``wait=False``: RabbitMQ goes on starting; call ``wait()``."""
    try:
        services = OwnBroker(kind, directory, appendonly=appendonly, host=host, heartbeat=heartbeat)
        return services.start(wait=wait)
    except (RuntimeError, OSError) as error:
        message = f"cannot start a {kind} broker of the test's own: {error}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"{REDIS_URL}/{BROKER_DB}")
    try:
        client.ping()
    except redis.RedisError as error:
        _unavailable("Redis", error)
    # This run owns its two Redis databases: start them empty, and leave them so (after
    # every fixture that depends on this one, the worker included, has stopped).
    backend = redis.Redis.from_url(f"{REDIS_URL}/{BACKEND_DB}")
    client.flushdb()
    backend.flushdb()
    yield client
    client.flushdb()
    backend.flushdb()
    backend.close()
    client.close()


@pytest.fixture(scope="session")
def database(redis_client: redis.Redis) -> Iterator[str]:
    """A PostgreSQL database of this run's own, migrated to the latest schema."""
    from shared.db.migrate import upgrade
    from shared.settings import get_settings

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DATABASE}"'))
            connection.execute(text(f'CREATE DATABASE "{TEST_DATABASE}"'))
    except Exception as error:
        _unavailable("PostgreSQL", error)
    url = get_settings().database_url
    upgrade(url)
    yield url
    from shared.db.engine import get_engine

    get_engine(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DATABASE}" WITH (FORCE)'))
    admin.dispose()


# Every table but the model store's, whose blobs are keyed by their hash and reused.
TABLES = (
    "ml_request",
    "ml_request_summary",
    "feedback",
    "batch",
    "batch_external_id",
    "accepted_request",
    "batch_chunk",
    "worker_lease",
    "dead_letter",
    "applied_message",
    "task_delivery",
    "api_idempotency_key",
    "ab_shadow_answer",
    "ab_replay_request",
    "ab_test",
    "worker_model",
    "ml_algorithm_status",
    "ml_algorithm",
    "endpoint",
)


def register_bundles(bundles: list[tuple[str, Any]]) -> None:
    from workers.registration import publish

    for status, bundle in bundles:
        publish(bundle, status=status, created_by="tests")


@pytest.fixture
def clean_db(database: str, builtin_bundles: list[tuple[str, Any]]) -> str:
    """Every test starts from an empty database holding only the registered tutorial models."""
    from shared.db.engine import get_engine

    # The session's worker may still be reading these tables (its model poll, a late
    # write of the previous test): TRUNCATE then waits, or loses a deadlock. Try again.
    for attempt in range(5):
        try:
            with get_engine(database).begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '10s'"))
                connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            break
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.5)
    register_bundles(builtin_bundles)
    return database


@pytest.fixture(scope="session")
def worker(database: str, builtin_bundles: list[tuple[str, Any]]) -> Iterator[object]:
    """A real `celery -A workers worker` process with 2 pool processes, for the whole run."""
    from producer.local_processes import LocalWorker

    # Registered before it starts, so its main process loads them before forking.
    register_bundles(builtin_bundles)
    process = LocalWorker(log_path=TEST_HOME / "worker.log", concurrency=2, name="tests")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def client(worker: object, clean_db: str) -> Any:
    """The Python client, with a worker running and a clean database."""
    from producer import Client

    return Client()


@pytest.fixture(scope="session")
def held_out() -> Any:
    """Rows of the Adult data with their true labels (the file's last 2,000)."""
    from workers.training import ADULT_DATA, read_adult

    return read_adult(ADULT_DATA).tail(2000).reset_index(drop=True)


def run_mlq(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `mlq` command line as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


API_PORT = 18000 + os.getpid() % 1000


@pytest.fixture(scope="session")
def api_server(worker: object, database: str) -> Iterator[Any]:
    """A real `mlq serve` process (one server process) beside the session's worker."""
    from producer.local_processes import LocalApi

    process = LocalApi(log_path=TEST_HOME / "api.log", port=API_PORT)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api_keys(database: str) -> dict[str, str]:
    """Secrets of API keys by what they may do: "all", and one key per single scope."""
    from shared.db.api_keys import SCOPES, create_key
    from shared.db.engine import session_scope

    with session_scope() as session:
        made = {"all": create_key(session, name="tests", scopes=SCOPES, created_by="tests")[0]}
        for scope in SCOPES:
            made[scope] = create_key(session, name=scope, scopes=[scope], created_by="tests")[0]
    return made


@pytest.fixture
def http(api_server: Any, api_keys: dict[str, str], clean_db: str) -> Iterator[Any]:
    """An HTTP client of the API with a key of every scope, against a clean database."""
    import httpx

    headers = {"Authorization": f"Bearer {api_keys['all']}"}
    with httpx.Client(base_url=api_server.url, headers=headers, timeout=60) as client:
        yield client
