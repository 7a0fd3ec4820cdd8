"""Test configuration shared by unit and integration tests.

The whole test process talks to its own PostgreSQL database (created and dropped per
run) and its own Redis databases, never to a developer's data. The variables are set
here, before any mlqueue module reads its settings.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

RUN_ID = f"{os.getpid()}"
POSTGRES_ADMIN_URL = os.environ.get(
    "MLQ_TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
TEST_DATABASE = f"mlq_test_{RUN_ID}"
REDIS_URL = os.environ.get("MLQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Two Redis databases (broker, results), flushed by the tests: two test runs at once on
# one machine need different pairs, e.g. MLQ_TEST_REDIS_DBS=7,8 (benchmarks use 11,12).
BROKER_DB, BACKEND_DB = (int(n) for n in os.environ.get("MLQ_TEST_REDIS_DBS", "13,14").split(","))
TEST_HOME = Path(tempfile.mkdtemp(prefix="mlq-test-home-"))

os.environ.update(
    MLQ_HOME=str(TEST_HOME),
    MLQ_DATABASE_URL=POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DATABASE}",
    MLQ_BROKER_URL=f"{REDIS_URL}/{BROKER_DB}",
    MLQ_RESULT_BACKEND=f"{REDIS_URL}/{BACKEND_DB}",
    # Tests change statuses and predict at once; the cache has its own unit test.
    MLQ_REGISTRY_CACHE_SECONDS="0",
    # Workers count each request's scorings and writes here (workers/attempts.py).
    MLQ_TEST_COUNTS_URL=f"{REDIS_URL}/{BACKEND_DB}",
    # The project's own bundles: `mlq train` in a test registers them without training.
    MLQ_ARTIFACTS_DIR=str(Path(__file__).resolve().parent.parent / "artifacts"),
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLANTED = "wrong forest"


@pytest.fixture(scope="session")
def builtin_bundles() -> list[tuple[str, Any]]:
    """This run's models, each with the status it is registered with: the project's own
    (trained now if missing, about a minute) and a planted one trained on flipped labels,
    wrong on purpose, for A/B tests. The planted one is registered as staging, so no
    default selection ever picks it."""
    from sklearn.ensemble import RandomForestClassifier

    from workers.training import (
        TARGET,
        AlgorithmSpec,
        Split,
        split_adult,
        train_algorithm,
        train_missing,
    )

    trained = [
        (spec.initial_status, bundle)
        for spec, bundle, _ in train_missing(PROJECT_ROOT / "artifacts")
    ]
    split = split_adult()
    flipped = split.train.assign(
        **{TARGET: split.train[TARGET].map({"<=50K": ">50K", ">50K": "<=50K"})}
    )
    spec = AlgorithmSpec(
        PLANTED,
        "0.0.1",
        "staging",
        "trained on flipped labels, for A/B tests",
        lambda: RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0),
    )
    planted = train_algorithm(spec, Split(flipped, split.test), TEST_HOME / "planted")
    return [*trained, ("staging", planted)]


@pytest.fixture(scope="session")
def artifacts_dir(builtin_bundles: list[tuple[str, Any]]) -> Path:
    """The project's artifacts folder, with the built-in models' bundles in it: what
    `mlq train` registers in a database of a test's own without training again."""
    return PROJECT_ROOT / "artifacts"
