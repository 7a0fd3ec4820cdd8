"""SQLAlchemy 2 models of the registry and of every request.

PostgreSQL is the real store (JSONB, but JSON for the request log's inputs and
responses); SQLite serves the embedded default. Constraints that keep the registry
sane live in the database, not in code: one active status per algorithm, one
production algorithm per endpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("testing", "staging", "production", "ab_testing", "retired")
# Statuses of an algorithm that workers hold in memory; a retired one is not served.
SERVING_STATUSES = ("testing", "staging", "production", "ab_testing")
REQUEST_STATUSES = ("OK", "ERROR")
KINDS = ("classifier", "regressor")
# What a worker serves a model with: the ONNX conversion, or scikit-learn itself when
# the model could not be converted.
RUNTIMES = ("onnx", "sklearn")

JsonValue = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; every
    stored time is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JsonValue,
        Any: JsonValue,
        datetime: DateTime(timezone=True),
    }


class Endpoint(Base):
    __tablename__ = "endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    owner: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An isolated endpoint's work travels on queues of its own ("predict.<name>",
    # "batch.<name>"), served by workers started for it (--endpoints), so that a heavy
    # model scales apart from the rest.
    isolated: Mapped[bool] = mapped_column(default=False)


class MLAlgorithm(Base):
    """A version of a model: (endpoint, name, version) names one artifact forever."""

    __tablename__ = "ml_algorithm"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "name", "version"),
        CheckConstraint(f"kind IN {KINDS!r}", name="kind"),
        CheckConstraint(f"runtime IN {RUNTIMES!r}", name="runtime"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoint.id"))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    code: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(128))
    # The file as registered (its bytes, hashed): what names this version.
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(16), default="classifier")
    runtime: Mapped[str] = mapped_column(String(16), default="onnx")
    # Why a model is served by scikit-learn rather than ONNX ("" when converted).
    runtime_note: Mapped[str] = mapped_column(Text, default="")
    # The blob a worker loads: the ONNX model, or the registered file itself.
    serving_sha256: Mapped[str | None] = mapped_column(String(64))
    # A classifier's labels (what feedback may say); null for a regressor.
    classes: Mapped[Any | None]
    # Input schema, ONNX inputs, checks and library versions (workers/bundles.py).
    manifest: Mapped[dict[str, Any] | None]


class MLAlgorithmStatus(Base):
    """The status history of an algorithm; exactly one row per algorithm is active."""

    __tablename__ = "ml_algorithm_status"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        Index(
            "uq_ml_algorithm_status_one_active",
            "algorithm_id",
            unique=True,
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
        Index(
            "uq_ml_algorithm_status_one_production",
            "endpoint_id",
            unique=True,
            postgresql_where=text("active AND status = 'production'"),
            sqlite_where=text("active AND status = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    algorithm_id: Mapped[int] = mapped_column(ForeignKey("ml_algorithm.id"), index=True)
    # Copied from the algorithm so the database itself can hold one production per endpoint.
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoint.id"))
    status: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool]
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")


AB_MODES = ("split", "shadow", "replay")
# A replay serves no traffic, so it may run beside a live test of its endpoint.
_LIVE_TEST_RUNNING = "ended_at IS NULL AND mode <> 'replay'"


class ABTest(Base):
    """An A/B test between the endpoint's production algorithm (A, the control) and a
    challenger (B). At most one live test (split or shadow) runs per endpoint, which the
    database enforces; a replay compares B with A's past answers and serves no one."""

    __tablename__ = "ab_test"
    __table_args__ = (
        CheckConstraint("split > 0 AND split < 1", name="split"),
        CheckConstraint("alpha > 0 AND alpha < 1", name="alpha"),
        CheckConstraint(f"mode IN {AB_MODES!r}", name="mode"),
        Index(
            "uq_ab_test_one_running",
            "endpoint_id",
            unique=True,
            postgresql_where=text(_LIVE_TEST_RUNNING),
            sqlite_where=text(_LIVE_TEST_RUNNING),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoint.id"), index=True)
    title: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    algorithm_a_id: Mapped[int] = mapped_column(ForeignKey("ml_algorithm.id"))
    algorithm_b_id: Mapped[int] = mapped_column(ForeignKey("ml_algorithm.id"))
    # Share of the endpoint's default traffic that goes to arm B.
    split: Mapped[float] = mapped_column(Float, default=0.5)
    min_labelled: Mapped[int] = mapped_column(Integer, default=200)
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    decision_rule: Mapped[str] = mapped_column(String(32))
    ended_by: Mapped[str | None] = mapped_column(String(128))
    summary: Mapped[dict[str, Any] | None]
    winner_id: Mapped[int | None] = mapped_column(ForeignKey("ml_algorithm.id"))
    mode: Mapped[str] = mapped_column(String(16), default="split")
    # The decision's rule and settings (shared.ab.DecisionSettings), as the evidence
    # shows them; null for tests started before they were stored.
    settings: Mapped[dict[str, Any] | None]
    # Requests younger than this are not yet expected to have their label: they count
    # for neither label coverage nor accuracy.
    label_delay_s: Mapped[float] = mapped_column(Float, default=0.0)
    # Where a challenger that does not win goes back to (staging stays staging).
    b_status_before: Mapped[str | None] = mapped_column(String(32))
    # A replay's batch: the challenger's answers to the replayed inputs.
    batch_id: Mapped[str | None] = mapped_column(String(64))


class ABShadowAnswer(Base):
    """The challenger's answer to a request of a shadow test, which the control served.

    Written beside the request's row by the worker that served it; joined with the
    request's feedback for the paired comparison. ``control_latency_ms`` is the control's
    scoring time on the same records, measured the same way, for the latency guardrail.
    """

    __tablename__ = "ab_shadow_answer"

    ab_test_id: Mapped[int] = mapped_column(ForeignKey("ab_test.id"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    algorithm_id: Mapped[int] = mapped_column(ForeignKey("ml_algorithm.id"))
    status: Mapped[str] = mapped_column(String(8))
    label: Mapped[str | None] = mapped_column(String(128))
    probability: Mapped[float | None]
    value: Mapped[float | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None]
    control_latency_ms: Mapped[float | None]
    # The request's own time (its row's created_at), so windows bound both alike.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ABReplayRequest(Base):
    """Which past request a replay batch's record re-scores: position ``position`` of
    the replay's batch holds the input of request ``request_id``."""

    __tablename__ = "ab_replay_request"

    ab_test_id: Mapped[int] = mapped_column(ForeignKey("ab_test.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))


class Feedback(Base):
    """The true label of a request, given after the fact.

    Keyed by request id with no foreign key: feedback that arrives before its
    prediction row is kept here and joins the row once it exists.
    """

    __tablename__ = "feedback"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    times_given: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(Base):
    """Many records submitted together; their rows carry its id and their input position."""

    __tablename__ = "batch"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    algorithm_status: Mapped[str | None] = mapped_column(String(32))
    algorithm_version: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(Text)
    # Known once the producer has read its whole input; null while it is still sending.
    total: Mapped[int | None]
    # Also the created_at of every row of the batch (their partition key).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    # When a chunk's rows were last committed (rows keep the batch's own time).
    written_at: Mapped[datetime | None]


class BatchExternalId(Base):
    """The caller's own id of a batch record (``--id-column``). Kept by the producer and
    never sent to a worker; `mlq batch results` joins it by position. Records without
    an id have no row. No foreign key, like ``ml_request.batch_id``: the producer writes
    the batch row first, and a table of batches stays truncatable on its own."""

    __tablename__ = "batch_external_id"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(Text)


class MLRequest(Base):
    """One row per prediction, keyed by the request id the producer made.

    On PostgreSQL the table is partitioned by day on ``created_at`` (migration 0011,
    shared/db/partitions.py), so the primary key holds the partition key too. A request
    id stays unique because ``created_at`` is fixed per request before any worker sees
    it: a batch record's is its batch's ``created_at``, a single record's is the time
    the producer accepted it (``accepted_at`` in the message). A redelivered message
    therefore carries the same key and conflicts. Inputs and responses are JSON (text,
    checked on write), not JSONB: nothing queries inside them, and JSONB's conversion
    was the largest cost of a batch's COPY. No foreign keys: a per-row check on every
    COPY, for ids the worker read from the registry itself. Only the indexes that
    queries use (docs/operations.md#the-request-log).
    """

    __tablename__ = "ml_request"
    __table_args__ = (
        CheckConstraint(f"status IN {REQUEST_STATUSES!r}", name="status"),
        # A batch's rows: progress, results, the positions a chunk finds written.
        Index(
            "ix_ml_request_batch_position",
            "batch_id",
            "batch_position",
            postgresql_where=text("batch_id IS NOT NULL"),
            sqlite_where=text("batch_id IS NOT NULL"),
        ),
        # A split or shadow test's rows (most rows have none: the index stays small).
        Index(
            "ix_ml_request_ab_test_id",
            "ab_test_id",
            postgresql_where=text("ab_test_id IS NOT NULL"),
            sqlite_where=text("ab_test_id IS NOT NULL"),
        ),
        # Time windows (stats, replay) inside a day's partition: a BRIN index, a few
        # pages per partition, since rows arrive in time order.
        Index("ix_ml_request_created_at", "created_at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    algorithm_id: Mapped[int | None]
    input: Mapped[Any] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[str | None] = mapped_column(String(128))
    probability: Mapped[float | None]
    # A regressor's prediction (a classifier's is ``label``).
    value: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(8))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None]
    batch_id: Mapped[str | None] = mapped_column(String(64))
    batch_position: Mapped[int | None]
    ab_test_id: Mapped[int | None]
    ab_arm: Mapped[str | None] = mapped_column(String(1))
    # When the request was accepted (see above); the partition key.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, primary_key=True)


class MLRequestSummary(Base):
    """What `mlq db prune` keeps of a day of request rows before it drops them: counts
    per endpoint, algorithm, A/B test and arm, and kind (batch or single), with the
    feedback that had joined them (labelled, correct) and latency and error sums."""

    __tablename__ = "ml_request_summary"
    __table_args__ = (Index("ix_ml_request_summary_day", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[datetime]
    endpoint: Mapped[str] = mapped_column(String(128))
    algorithm_id: Mapped[int | None]
    ab_test_id: Mapped[int | None]
    ab_arm: Mapped[str | None] = mapped_column(String(1))
    batch: Mapped[bool]
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    labelled: Mapped[int] = mapped_column(BigInteger)
    correct: Mapped[int] = mapped_column(BigInteger)
    # A regressor's labelled rows: the sum of |label - value|.
    abs_error_sum: Mapped[float | None]
    latency_ms_sum: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskDelivery(Base):
    """How many times a message was redelivered (its worker process died while running it).

    A row exists only for messages that came back at least once, so the common path
    writes nothing here. It bounds a poison message: see workers/deliveries.py.
    """

    __tablename__ = "task_delivery"

    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(128))
    redeliveries: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)


class AcceptedRequest(Base):
    """A single prediction an mlq producer accepted, written before it is sent: what the
    reconciler sends again when no row came (workers/reconciler.py). Removed once its
    row exists."""

    __tablename__ = "accepted_request"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    # The task's keyword arguments as sent (record, selection, assignment key): zlib of
    # JSON, as a chunk's, so that any record a worker can answer is kept as it was
    # (JSONB refuses a NUL, which must reach the worker to get its error row).
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    producer: Mapped[str] = mapped_column(String(16))
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Set when the reconciler first found it neither written, queued nor held.
    overdue_at: Mapped[datetime | None]
    resent_at: Mapped[datetime | None]
    resends: Mapped[int] = mapped_column(Integer, default=0)


class BatchChunk(Base):
    """A chunk of a batch a producer sent, written before it is sent, with its records
    (compressed JSON) so that the reconciler can send it again; removed once every
    position of the chunk has a row."""

    __tablename__ = "batch_chunk"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    # zlib-compressed JSON of the task's keyword arguments.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    overdue_at: Mapped[datetime | None]
    resent_at: Mapped[datetime | None]
    resends: Mapped[int] = mapped_column(Integer, default=0)


class WorkerLease(Base):
    """A message a live worker holds (running or reserved), renewed every
    MLQ_LEASE_SECONDS by the worker's main process (workers/leases.py)."""

    __tablename__ = "worker_lease"

    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    worker: Mapped[str] = mapped_column(String(255))
    # The broker's tag of the message (Redis: its key in the ``unacked`` hash).
    delivery_tag: Mapped[str | None] = mapped_column(String(255))
    renewed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DeadLetter(Base):
    """A message given up (poison, or lost and sent again too often): what it was, why,
    and its arguments, so that `mlq dead-letters replay` can send it again."""

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[str] = mapped_column(String(255), index=True)
    kwargs: Mapped[dict[str, Any]]
    error_code: Mapped[str] = mapped_column(String(64))
    error_message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]


class AppliedMessage(Base):
    """A feedback message already applied, by its task id, with its result: a
    redelivery returns that result and counts no label twice."""

    __tablename__ = "applied_message"

    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ModelBlob(Base):
    """A model file in the shared model store, by its sha256; its bytes are in chunks
    so that no single value is larger than a chunk."""

    __tablename__ = "model_blob"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelBlobChunk(Base):
    __tablename__ = "model_blob_chunk"

    sha256: Mapped[str] = mapped_column(
        ForeignKey("model_blob.sha256", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WorkerModel(Base):
    """Which worker holds which algorithm in memory, refreshed while it does: what
    `mlq models list` shows as the live workers of a model."""

    __tablename__ = "worker_model"

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    algorithm_id: Mapped[int] = mapped_column(
        ForeignKey("ml_algorithm.id", ondelete="CASCADE"), primary_key=True
    )
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A key of the HTTP API: only the sha256 of its secret is kept (the secret is
    random and long, so a plain hash is enough), with the scopes it grants."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    # The first characters of the secret, shown by `mlq keys list` to tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(128))  # comma-separated
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    revoked_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """A POST the API answered under an ``Idempotency-Key`` header, per API key: a retry
    with the same key gets the first answer instead of doing the work again."""

    __tablename__ = "api_idempotency_key"

    # "key:<id>" of the API key that sent it, or "anonymous" when auth is off.
    owner: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    # A key reused for another request body is refused, not answered with another's.
    body_sha256: Mapped[str] = mapped_column(String(64))
    # A prediction's request id, fixed when the key is first seen.
    request_id: Mapped[str | None] = mapped_column(String(128))
    status_code: Mapped[int | None]
    response: Mapped[Any | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
