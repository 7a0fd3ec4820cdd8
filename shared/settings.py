"""One typed settings object, read from the environment (pydantic-settings).

With no variable set, everything runs from local files under ``MLQ_HOME``: a SQLite
database, and a Celery broker and result backend on SQLite that need no server.
Pointing the three URLs at Redis and PostgreSQL is configuration only. An unsupported
or unsafe value is refused at start with a ConfigurationError naming the variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shared.contracts import MAX_BATCH_POSITION
from shared.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "sqlite", "sqla+")
# Not rpc://: results must outlive the producer that sent the task.
BACKEND_SCHEMES = ("redis", "rediss", "db+")
DATABASE_SCHEMES = ("postgresql", "sqlite")


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (psycopg2 is not installed)."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not shaped like a URL: nothing that reads as a password
        return url if "@" not in url else url.rpartition("@")[2]


def _schemes(*allowed: str) -> AfterValidator:
    def check(url: str) -> str:
        if url and not url.startswith(allowed):
            listed = ", ".join(allowed)
            raise ValueError(f"is not supported: the URL must start with one of {listed}")
        return url

    return AfterValidator(check)


Seconds = Annotated[float, Field(ge=0, le=3600)]
Positive = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    """Every setting, by its environment variable (``MLQ_`` + the upper-case name, or the
    alias given)."""

    model_config = SettingsConfigDict(env_prefix="MLQ_", frozen=True, extra="ignore")

    home: Path = PROJECT_ROOT / ".mlq"
    artifacts_dir: Path = PROJECT_ROOT / "artifacts"
    # Empty means the embedded default under ``home`` (filled in below).
    broker_url: Annotated[str, _schemes(*BROKER_SCHEMES)] = ""
    result_backend: Annotated[str, _schemes(*BACKEND_SCHEMES)] = ""
    database_url: Annotated[str, _schemes(*DATABASE_SCHEMES)] = ""
    # How long a finished task's result stays in the result backend. Rows in the
    # database outlive it: `mlq result` reads them first.
    result_expires_s: Positive = Field(7 * 24 * 3600, alias="MLQ_RESULT_EXPIRES")
    # Redis redelivers an unacknowledged message after this long. A live worker renews
    # the lease of every message it holds every MLQ_LEASE_SECONDS (workers/leases.py),
    # so a long task is never delivered twice; a worker that died whole stops renewing,
    # and its messages come back within this bound.
    visibility_timeout_s: Positive = Field(45, alias="MLQ_VISIBILITY_TIMEOUT")
    lease_s: Annotated[float, Field(gt=0, le=600)] = Field(10.0, alias="MLQ_LEASE_SECONDS")
    task_time_limit_s: Positive = Field(600, alias="MLQ_TASK_TIME_LIMIT")
    # A task past its soft limit is stopped and retried (up to MLQ_MAX_DELIVERIES
    # times), then its records get error rows; past the hard limit its process is
    # killed and the reconciler sends the work again.
    soft_time_limit_s: Positive = Field(540, alias="MLQ_SOFT_TIME_LIMIT")
    # Accepted work: producers record it in PostgreSQL before sending ("on"), so that
    # the reconciler can send again what a broker or a worker lost. "off" only for
    # measuring its cost (benchmarks) and proving the fault tests can fail.
    ledger: Literal["on", "off"] = "on"
    # How often beat runs the reconciler, and how long accepted work may go without a
    # row (and without being queued or held by a live worker) before it is sent again.
    reconcile_every_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0, alias="MLQ_RECONCILE_SECONDS"
    )
    reconcile_after_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        15.0, alias="MLQ_RECONCILE_AFTER"
    )
    # PostgreSQL: the longest a statement may run (a lock wait, a silent server) before
    # it fails and its task is retried, and TCP keepalives that notice a dead server.
    db_statement_timeout_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        120.0, alias="MLQ_DB_STATEMENT_TIMEOUT"
    )
    db_keepalive_s: Annotated[int, Field(gt=0, le=3600)] = Field(10, alias="MLQ_DB_KEEPALIVE")
    # How long a worker reuses an endpoint's list of algorithms and statuses before
    # reading it again: a status change (an A/B test starting or ending) reaches every
    # worker within this time. 0 reads the registry on every request.
    registry_cache_s: Seconds = Field(2.0, alias="MLQ_REGISTRY_CACHE_SECONDS")
    # How often Celery beat looks for A/B tests whose time is up.
    ab_check_s: Seconds = Field(30.0, alias="MLQ_AB_CHECK_SECONDS")
    # A message whose worker process dies while running it comes back; after this many
    # deliveries it is given up and its records get error rows (a poison message).
    max_deliveries: Positive = 3
    # RabbitMQ only: the quorum queues' own bound (x-delivery-limit), a backstop for a
    # message that dies before the bound above can count it; past it the broker moves
    # the message to the dead-letter queue. Empty: MLQ_MAX_DELIVERIES + 2, so that the
    # bound above, which gives the records error rows, acts first.
    broker_delivery_limit: Positive | None = None
    # How long a producer keeps trying to reach the broker and the result backend
    # before it fails with an error saying what was sent.
    send_timeout_s: Seconds = Field(10.0, alias="MLQ_SEND_TIMEOUT")
    # The largest record, as compact JSON, that a producer sends and a worker scores: a
    # bigger one is refused by the producer and gets an error row (not stored whole)
    # from the worker, which cannot trust producers in other languages to check.
    max_record_bytes: Positive = 65536
    # The most records one batch may hold (32-bit positions in the database).
    max_batch_records: Annotated[int, Field(gt=0, le=MAX_BATCH_POSITION)] = 10_000_000
    # Where a worker keeps its copies of model files from the shared store (default:
    # MLQ_HOME/model-cache). Empty on a new host: filled from the database.
    model_cache: Path | None = None
    # How often a worker's main process compares the models it holds with the registry,
    # loads new versions and recycles its pool processes so they share them.
    model_poll_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        5.0, alias="MLQ_MODEL_POLL_SECONDS"
    )
    # The endpoints a worker serves (comma-separated); empty: every endpoint that is not
    # isolated. `celery -A workers worker --endpoints a,b` overrides it.
    worker_endpoints: str = ""
    # The HTTP API (`mlq serve`, producer/api). "off" serves without API keys, and only
    # to clients on the loopback interface: a demo on one machine (docs/api.md).
    api_auth: Literal["on", "off"] = "on"
    # The largest JSON or form body the API reads (a batch upload is streamed instead).
    api_max_body_bytes: Positive = 1_048_576
    # The most concurrent predictions the API sends as one message, and how many such
    # messages per endpoint it keeps in flight before it holds new requests back to
    # group them (best near the number of worker processes serving predictions).
    api_group_max_size: Annotated[int, Field(gt=0, le=1000)] = 64
    api_group_max_in_flight: Annotated[int, Field(gt=0, le=1000)] = 2
    # The longest ?wait= a client may ask for; longer asks wait this long.
    api_max_wait_s: Seconds = Field(60.0, alias="MLQ_API_MAX_WAIT_SECONDS")

    # Tests only: a Redis URL where workers count how many times each request was
    # scored and written (workers/attempts.py). Empty (off) in any real deployment.
    test_counts_url: str = ""

    @model_validator(mode="after")
    def _defaults_and_consistency(self) -> Settings:
        home = self.home.expanduser().resolve()
        fill = {
            "home": home,
            "artifacts_dir": self.artifacts_dir.expanduser().resolve(),
            "model_cache": (self.model_cache or home / "model-cache").expanduser().resolve(),
            "broker_url": self.broker_url or f"sqlite:///{home / 'broker.sqlite'}",
            "result_backend": self.result_backend or f"db+sqlite:///{home / 'results.sqlite'}",
            "database_url": normalise_database_url(
                self.database_url or f"sqlite:///{home / 'mlqueue.sqlite'}"
            ),
        }
        for name, value in fill.items():
            object.__setattr__(self, name, value)
        limit = self.broker_delivery_limit or self.max_deliveries + 2
        object.__setattr__(self, "broker_delivery_limit", limit)
        if limit < self.max_deliveries:
            raise ValueError(
                f"MLQ_BROKER_DELIVERY_LIMIT ({self.broker_delivery_limit}) must be at least "
                f"MLQ_MAX_DELIVERIES ({self.max_deliveries}), or RabbitMQ would set a "
                "poison message aside before its records got error rows"
            )
        if self.visibility_timeout_s < 3 * self.lease_s:
            raise ValueError(
                f"MLQ_VISIBILITY_TIMEOUT ({self.visibility_timeout_s}) must be at least three "
                f"times MLQ_LEASE_SECONDS ({self.lease_s:g}), or a task still running could "
                "be delivered to a second worker between two renewals of its lease"
            )
        if self.soft_time_limit_s >= self.task_time_limit_s:
            raise ValueError(
                f"MLQ_SOFT_TIME_LIMIT ({self.soft_time_limit_s}) must be less than "
                f"MLQ_TASK_TIME_LIMIT ({self.task_time_limit_s})"
            )
        return self

    @classmethod
    def from_env(cls) -> Settings:
        try:
            return cls()
        except ValidationError as error:
            raise ConfigurationError(_explain(error)) from None

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
            "lease renewed every (s)": f"{self.lease_s:g}",
            "task time limit (s)": str(self.task_time_limit_s),
            "soft time limit (s)": str(self.soft_time_limit_s),
            "ledger of accepted work": self.ledger,
            "reconcile every (s) / after (s)": (
                f"{self.reconcile_every_s:g} / {self.reconcile_after_s:g}"
            ),
            "database statement timeout (s)": f"{self.db_statement_timeout_s:g}",
            "database TCP keepalive (s)": str(self.db_keepalive_s),
            "registry cache (s)": str(self.registry_cache_s),
            "A/B check every (s)": str(self.ab_check_s),
            "max deliveries of a message": str(self.max_deliveries),
            "broker delivery limit (RabbitMQ)": str(self.broker_delivery_limit),
            "send timeout (s)": str(self.send_timeout_s),
            "max record size (bytes of JSON)": str(self.max_record_bytes),
            "max records in a batch": str(self.max_batch_records),
            "model cache": str(self.model_cache),
            "model poll every (s)": str(self.model_poll_s),
            "worker endpoints": self.worker_endpoints or "all but isolated",
            "API auth": self.api_auth,
            "API max body (bytes)": str(self.api_max_body_bytes),
            "API group max size": str(self.api_group_max_size),
            "API group max in flight": str(self.api_group_max_in_flight),
            "API max wait (s)": str(self.api_max_wait_s),
        }


def _variable(field: str) -> str:
    info = Settings.model_fields.get(field)
    return (info.alias if info and info.alias else f"MLQ_{field.upper()}") if info else field


# pydantic's error types, said as docs/configuration.md says them.
_REASONS = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "greater_than": "must be positive",
    "greater_than_equal": "must not be negative",
    "less_than_equal": "must be at most {le}",
}


def _explain(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = problem["loc"][0] if problem["loc"] else ""
        given: Any = problem.get("input")
        if isinstance(given, str):
            given = redact_url(given)
        reason = _REASONS.get(problem["type"], "").format(**(problem.get("ctx") or {}))
        if not reason:
            reason = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{_variable(str(where))}={given!r} {reason}" if where else reason)
    return "; ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings.from_env()
    # The embedded files, the demo's logs and beat's schedule live here.
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
