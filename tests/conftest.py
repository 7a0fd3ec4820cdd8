"""Test configuration shared by unit and integration tests.

The whole test process talks to its own PostgreSQL database (created and dropped per
run) and its own Redis databases, never to a developer's data. The variables are set
here, before any mlqueue module reads its settings.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

RUN_ID = f"{os.getpid()}"
POSTGRES_ADMIN_URL = os.environ.get(
    "MLQ_TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
TEST_DATABASE = f"mlq_test_{RUN_ID}"
REDIS_URL = os.environ.get("MLQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")
TEST_HOME = Path(tempfile.mkdtemp(prefix="mlq-test-home-"))

os.environ.update(
    MLQ_HOME=str(TEST_HOME),
    MLQ_DATABASE_URL=POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DATABASE}",
    MLQ_BROKER_URL=f"{REDIS_URL}/13",
    MLQ_RESULT_BACKEND=f"{REDIS_URL}/14",
    # Tests change statuses and predict at once; the cache has its own unit test.
    MLQ_REGISTRY_CACHE_SECONDS="0",
)
os.environ.pop("MLQ_ARTIFACTS_DIR", None)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """The project's trained models, trained now if missing (about 10 s)."""
    from shared.settings import get_settings
    from workers.training import train_missing

    directory = get_settings().artifacts_dir
    train_missing(directory)
    return directory
