"""One typed settings object, read from the environment.

With no variable set, everything runs from local files under ``MLQ_HOME``: a SQLite
database, and a Celery broker and result backend on SQLite that need no server.
Pointing the three URLs at Redis and PostgreSQL is configuration only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.contracts import MAX_BATCH_POSITION
from shared.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "sqlite", "sqla+")
# Not rpc://: it cannot hold the mark a producer leaves for every request it sends.
BACKEND_SCHEMES = ("redis", "rediss", "db+")
DATABASE_SCHEMES = ("postgresql", "sqlite")


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def _check_scheme(variable: str, url: str, allowed: tuple[str, ...]) -> str:
    if not url.startswith(allowed):
        raise ConfigurationError(
            f"{variable}={redact_url(url)!r} is not supported: "
            f"the URL must start with one of {', '.join(allowed)}"
        )
    return url


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (psycopg2 is not installed)."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


@dataclass(frozen=True)
class Settings:
    home: Path
    artifacts_dir: Path
    broker_url: str
    result_backend: str
    database_url: str
    # How long a finished task's result stays in the result backend. Rows in the
    # database outlive it: `mlq result` reads them first.
    result_expires_s: int = 7 * 24 * 3600
    # Redis redelivers an unacknowledged message after this long; it must exceed the
    # longest task so that a slow task is never run twice while it is still running.
    visibility_timeout_s: int = 3600
    task_time_limit_s: int = 600
    # How long a worker reuses an endpoint's list of algorithms and statuses before
    # reading it again: a status change (an A/B test starting or ending) reaches every
    # worker within this time. 0 reads the registry on every request.
    registry_cache_s: float = 2.0
    # How often Celery beat looks for A/B tests whose time is up.
    ab_check_s: float = 30.0
    # A message whose worker process dies while running it comes back; after this many
    # deliveries it is given up and its records get error rows (a poison message).
    max_deliveries: int = 3
    # How long a producer keeps trying to reach the broker and the result backend
    # before it fails with an error saying what was sent.
    send_timeout_s: float = 10.0
    # The largest record, as compact JSON, that a producer sends and a worker scores: a
    # bigger one is refused by the producer and gets an error row (not stored whole)
    # from the worker, which cannot trust producers in other languages to check.
    max_record_bytes: int = 65536
    # The most records one batch may hold; a producer refuses a bigger one.
    max_batch_records: int = 10_000_000

    @classmethod
    def from_env(cls) -> Settings:
        home = _env_path("MLQ_HOME", PROJECT_ROOT / ".mlq")
        artifacts_dir = _env_path("MLQ_ARTIFACTS_DIR", PROJECT_ROOT / "artifacts")
        broker_url = os.environ.get("MLQ_BROKER_URL") or f"sqlite:///{home / 'broker.sqlite'}"
        result_backend = (
            os.environ.get("MLQ_RESULT_BACKEND") or f"db+sqlite:///{home / 'results.sqlite'}"
        )
        database_url = normalise_database_url(
            os.environ.get("MLQ_DATABASE_URL") or f"sqlite:///{home / 'mlqueue.sqlite'}"
        )
        settings = cls(
            home=home,
            artifacts_dir=artifacts_dir,
            broker_url=_check_scheme("MLQ_BROKER_URL", broker_url, BROKER_SCHEMES),
            result_backend=_check_scheme("MLQ_RESULT_BACKEND", result_backend, BACKEND_SCHEMES),
            database_url=_check_scheme("MLQ_DATABASE_URL", database_url, DATABASE_SCHEMES),
            result_expires_s=_positive_int("MLQ_RESULT_EXPIRES", 7 * 24 * 3600),
            visibility_timeout_s=_positive_int("MLQ_VISIBILITY_TIMEOUT", 3600),
            task_time_limit_s=_positive_int("MLQ_TASK_TIME_LIMIT", 600),
            registry_cache_s=_seconds("MLQ_REGISTRY_CACHE_SECONDS", 2.0),
            ab_check_s=_seconds("MLQ_AB_CHECK_SECONDS", 30.0),
            max_deliveries=_positive_int("MLQ_MAX_DELIVERIES", 3),
            send_timeout_s=_seconds("MLQ_SEND_TIMEOUT", 10.0),
            max_record_bytes=_positive_int("MLQ_MAX_RECORD_BYTES", 65536, unit="bytes"),
            max_batch_records=_positive_int("MLQ_MAX_BATCH_RECORDS", 10_000_000, unit="records"),
        )
        if settings.max_batch_records > MAX_BATCH_POSITION:
            raise ConfigurationError(
                f"MLQ_MAX_BATCH_RECORDS ({settings.max_batch_records}) must be at most "
                f"{MAX_BATCH_POSITION}: the database numbers a batch's records in 32-bit integers"
            )
        if settings.visibility_timeout_s <= settings.task_time_limit_s:
            raise ConfigurationError(
                f"MLQ_VISIBILITY_TIMEOUT ({settings.visibility_timeout_s}) must exceed "
                f"MLQ_TASK_TIME_LIMIT ({settings.task_time_limit_s}), or a task still "
                "running would be delivered to a second worker"
            )
        return settings

    @property
    def broker_is_embedded(self) -> bool:
        return self.broker_url.startswith("sqlite")

    @property
    def uses_embedded_files(self) -> bool:
        return "sqlite" in (self.broker_url + self.result_backend + self.database_url)

    def describe(self) -> dict[str, str]:
        """Where everything lives, with passwords hidden."""
        return {
            "broker": redact_url(self.broker_url),
            "result backend": redact_url(self.result_backend),
            "database": redact_url(self.database_url),
            "artifacts": str(self.artifacts_dir),
            "home": str(self.home),
            "result expires (s)": str(self.result_expires_s),
            "visibility timeout (s)": str(self.visibility_timeout_s),
            "task time limit (s)": str(self.task_time_limit_s),
            "registry cache (s)": str(self.registry_cache_s),
            "A/B check every (s)": str(self.ab_check_s),
            "max deliveries of a message": str(self.max_deliveries),
            "send timeout (s)": str(self.send_timeout_s),
            "max record size (bytes of JSON)": str(self.max_record_bytes),
            "max records in a batch": str(self.max_batch_records),
        }


def _positive_int(name: str, default: int, unit: str = "seconds") -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} must be a whole number of {unit}") from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be positive")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} must be a number of seconds") from None
    if not 0 <= value <= 3600:
        raise ConfigurationError(f"{name}={raw!r} must be between 0 and 3600")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings.from_env()
    # The embedded files, the demo's logs and beat's schedule live here.
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
