"""Every task name, queue name and payload shape, in one place.

Producers send tasks by these names with plain JSON keyword arguments, so a producer
in any language (or Flower's HTTP API) can send them. docs/tasks.md is written from
this module; keep the two in step (tests/unit/test_docs.py checks every name is there).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final, Literal, NotRequired, TypedDict

import orjson

from shared.errors import InvalidRecordError, RecordTooLargeError
from shared.json_safe import json_safe

# Queues. Single records and batch chunks travel apart so that one prediction is never
# stuck behind a large batch; control work (beat's A/B evaluation) has its own lane too.
QUEUE_PREDICT = "predict"
QUEUE_BATCH = "batch"
QUEUE_FEEDBACK = "feedback"
QUEUE_CONTROL = "control"
QUEUES = (QUEUE_PREDICT, QUEUE_BATCH, QUEUE_FEEDBACK, QUEUE_CONTROL)

# Task names.
TASK_PREDICT = "mlq.predict"
TASK_PREDICT_BATCH = "mlq.predict_batch"
TASK_PREDICT_MANY = "mlq.predict_many"
TASK_FEEDBACK = "mlq.feedback"
TASK_AB_EVALUATE = "mlq.ab.evaluate"
TASK_PARTITIONS = "mlq.db.partitions"
TASK_ECHO = "mlq.echo"

TASK_RECONCILE = "mlq.reconcile"

# A message header: when a producer sent the message (epoch seconds). The reconciler
# reads it on the oldest message of a queue to tell whether earlier work can still be
# waiting there (workers/reconciler.py).
SENT_AT_HEADER = "mlq_sent_at"

TASK_QUEUES = {
    TASK_PREDICT: QUEUE_PREDICT,
    TASK_PREDICT_BATCH: QUEUE_BATCH,
    TASK_PREDICT_MANY: QUEUE_PREDICT,
    TASK_FEEDBACK: QUEUE_FEEDBACK,
    TASK_AB_EVALUATE: QUEUE_CONTROL,
    TASK_RECONCILE: QUEUE_CONTROL,
    TASK_PARTITIONS: QUEUE_CONTROL,
    TASK_ECHO: QUEUE_PREDICT,
}

# How an A/B test decides (shared/ab/decision.py). "sequential": an always-valid test,
# evaluated by beat as the test runs, that ends it once the evidence is conclusive;
# B replaces A only on enough labels from a healthy test with no guardrail breached.
# "higher_accuracy": the tutorial's rule, decided at the end with no test of chance.
RULE_SEQUENTIAL = "sequential"
RULE_HIGHER_ACCURACY = "higher_accuracy"
DECISION_RULES = (RULE_SEQUENTIAL, RULE_HIGHER_ACCURACY)
# How a test reaches the challenger. "split": a share of the traffic is served by B.
# "shadow": A serves everyone, B scores the same records beside it and its answers are
# kept. "replay": B re-scores inputs A already answered (`mlq ab replay`); no traffic.
MODE_SPLIT = "split"
MODE_SHADOW = "shadow"
MODE_REPLAY = "replay"
LIVE_MODES = (MODE_SPLIT, MODE_SHADOW)
STATUS_AB_TESTING = "ab_testing"

# Feedback items per message when many are sent at once.
FEEDBACK_CHUNK_SIZE = 1000

# Records of a batch go to workers in chunks of this many (one message, one
# predict_proba, one bulk write each); `benchmarks/batch_throughput.py` measures it.
DEFAULT_CHUNK_SIZE = 5000


# The widths of the columns a row is keyed and filed by (shared/db/models.py): a longer
# id cannot key a row, so producers refuse it and workers answer it without a row.
MAX_REQUEST_ID_LENGTH = 128
MAX_BATCH_ID_LENGTH = 64  # so that "{batch_id}:{position}" fits a request id
MAX_ENDPOINT_LENGTH = 128
# Batch positions and totals are 32-bit integer columns.
MAX_BATCH_POSITION = 2**31 - 1
# No valid record is nested at all. This is orjson's limit; a worker hands a message to
# its pool process with pickle, which fails (and takes the worker down) on about twice
# this depth, so producers refuse deeper records.
MAX_RECORD_DEPTH = 254


_JSON_TYPES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}


def key_problem(value: object, max_length: int, *, empty_ok: bool = False) -> str | None:
    """Why ``value`` cannot key or file a row (a request id, batch id or endpoint), or None."""
    if not isinstance(value, str):
        return f"must be a string, got {_JSON_TYPES.get(type(value), type(value).__name__)}"
    if not value and not empty_ok:
        return "must not be empty"
    if len(value) > max_length:
        return f"is {len(value):,} characters long, more than the {max_length} a row can hold"
    if "\x00" in value:
        return "holds a NUL character, which PostgreSQL cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone surrogate (half a UTF-16 pair), which is not text"
    return None


def record_limit_error(
    record: Any, limit: int, what: str = "the record"
) -> InvalidRecordError | None:
    """The error of a record no producer may send and no worker scores, or None: bigger
    than ``limit`` bytes as compact UTF-8 JSON (MLQ_MAX_RECORD_BYTES), or nested more
    than MAX_RECORD_DEPTH levels deep.

    orjson measures a typical record in well under a microsecond. What it cannot encode
    (nesting past its limit, integers beyond 64 bits, lone surrogates, non-string keys)
    is measured as it would be stored (``json_safe``, which bounds depth).
    """
    try:
        size = len(orjson.dumps(record))
    except TypeError:
        if nested_deeper_than(record, MAX_RECORD_DEPTH):
            return InvalidRecordError(
                None,
                f"{what} is nested more than {MAX_RECORD_DEPTH} levels deep; "
                "a valid record is not nested at all",
            )
        text = json.dumps(json_safe(record), separators=(",", ":"), ensure_ascii=False, default=str)
        size = len(text.encode("utf-8", "surrogatepass"))
    return RecordTooLargeError(size, limit, what) if size > limit else None


_CONTAINERS = (dict, list, tuple)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep (without recursing, so
    that any depth can be measured). Only containers are pushed, and isinstance takes a
    tuple, not a union (3 times faster: a 5,000-record chunk is walked in about 2 ms)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if not isinstance(item, _CONTAINERS):
            continue
        for child in item.values() if isinstance(item, dict) else item:
            # type() first: most children are str, int or float, never containers.
            if type(child) in _SCALARS:
                continue
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return False


def batch_request_id(batch_id: str, position: int) -> str:
    """The request id of the record at ``position`` (0-based) of a batch.

    Derived, not random: a chunk sent twice writes the same ids, so a resubmitted batch
    scores only what is missing.
    """
    return f"{batch_id}:{position}"


def chunk_task_id(batch_id: str, start: int) -> str:
    """The task id of the chunk of a batch that starts at ``start``."""
    return f"{batch_id}:chunk:{start}"


def parse_chunk_task_id(task_id: str) -> tuple[str, int] | None:
    batch_id, sep, start = task_id.rpartition(":chunk:")
    if not sep or not start.isdigit():
        return None
    return batch_id, int(start)


# Why a single request may not use an id shaped like a batch record's.
BATCH_SHAPED_ID = (
    "is shaped like a batch record's id (BATCH:POSITION), which batches reserve: a single "
    "request with it would take that record's place; use another separator than ':'"
)


def unknown_to_mlq(request_id: str) -> str:
    """What is known of an id with no row that no mlq producer accepted."""
    return (
        f"request {request_id[:200]!r} is unknown to mlqueue: no mlq producer accepted it "
        "and no row has it; it may still be queued by another producer (one sending "
        "tasks by name), and then its row comes once a worker takes it"
    )


def parse_batch_request_id(request_id: str) -> tuple[str, int] | None:
    batch_id, sep, position = request_id.rpartition(":")
    if not sep or not position.isdigit():
        return None
    return batch_id, int(position)


DEFAULT_ENDPOINT = "income_classifier"
DEFAULT_STATUS = "production"

# Result states of a request, as `mlq result` and `Client.result` report them. OK and
# ERROR are final (a row exists); QUEUED and RUNNING are not yet.
STATUS_OK: Final = "OK"
STATUS_ERROR: Final = "ERROR"
STATUS_QUEUED: Final = "QUEUED"
STATUS_RUNNING: Final = "RUNNING"
RequestStatus = Literal["OK", "ERROR", "QUEUED", "RUNNING"]
# The producer marks a request id in the result backend with this Celery state before
# sending it, so that an id it issued is told apart from one never issued (PENDING).
ISSUED_STATE = "QUEUED"


class PredictKwargs(TypedDict):
    """Keyword arguments of ``mlq.predict``."""

    record: dict[str, Any]
    endpoint: str
    request_id: NotRequired[str]  # default: the Celery task id, stable on redelivery
    status: NotRequired[str | None]  # default: "production"
    version: NotRequired[str | None]
    assignment_key: NotRequired[str | None]  # A/B arm stickiness; default: the request id
    # When the producer accepted the record (ISO 8601, UTC): its row's created_at, so a
    # redelivery writes the same key. Default: when the worker writes the row.
    accepted_at: NotRequired[str]


class PredictManyItem(TypedDict):
    record: dict[str, Any]
    request_id: str
    assignment_key: NotRequired[str | None]
    accepted_at: NotRequired[str]  # as in PredictKwargs


def accepted_now() -> str:
    """``accepted_at`` for a record accepted now."""
    return datetime.now(UTC).isoformat()


class PredictManyKwargs(TypedDict):
    """Keyword arguments of ``mlq.predict_many``: single records sent together (the HTTP
    API groups concurrent requests); each gets its own row and result, in order."""

    items: list[PredictManyItem]
    endpoint: str
    status: NotRequired[str | None]
    version: NotRequired[str | None]


def endpoint_queue(queue: str, endpoint: str) -> str:
    """The queue of an isolated endpoint's work: its own, so that its workers scale apart."""
    return f"{queue}.{endpoint}"


class FeedbackItem(TypedDict):
    request_id: str
    label: str


class FeedbackResult(TypedDict):
    """What ``mlq.feedback`` returns for its ``items``."""

    recorded: int  # labels stored for requests that have a row
    replaced: list[dict[str, str]]  # {request_id, previous, label}: a second label won
    early: list[str]  # no row yet but issued: kept, joined when the row is written
    unknown: list[str]  # never issued: kept all the same, and reported
    invalid: list[dict[str, str]]  # {request_id, error}: not stored


class PredictBatchKwargs(TypedDict):
    """Keyword arguments of ``mlq.predict_batch``: one chunk of a batch."""

    batch_id: str
    endpoint: str
    start: int  # input position of records[0]; record i gets batch_request_id(batch_id, start + i)
    records: list[Any]
    status: NotRequired[str | None]
    version: NotRequired[str | None]
    # One registered version by its id, whatever its status (`mlq ab replay` sends its
    # records to the challenger so): overrides status and version, and no A/B test applies.
    algorithm_id: NotRequired[int | None]


class PredictBatchResult(TypedDict):
    batch_id: str
    start: int
    count: int
    ok: int
    errors: int
    written: int  # 0 when the chunk had been written before (a redelivery)


class AlgorithmRef(TypedDict):
    id: int
    endpoint: str
    name: str
    version: str
    status: str
    sha256: str | None  # the registered artifact that answered


class ErrorInfo(TypedDict):
    code: str
    message: str
    field: NotRequired[str | None]


class PredictResult(TypedDict):
    """What ``mlq.predict`` returns and what MLRequest.response stores."""

    request_id: str
    status: RequestStatus
    label: str | None  # a classifier's answer
    probability: float | None  # probability of ``label`` (when the model gives them)
    probabilities: dict[str, float] | None
    value: float | None  # a regressor's answer
    algorithm: AlgorithmRef | None
    error: ErrorInfo | None


# The tutorial's sample record (a married craft-repair worker, 68 hours a week): both
# tutorial models label it "<=50K".
EXAMPLE_RECORD: dict[str, Any] = {
    "age": 37,
    "workclass": "Private",
    "fnlwgt": 34146,
    "education": "HS-grad",
    "education-num": 9,
    "marital-status": "Married-civ-spouse",
    "occupation": "Craft-repair",
    "relationship": "Husband",
    "race": "White",
    "sex": "Male",
    "capital-gain": 0,
    "capital-loss": 0,
    "hours-per-week": 68,
    "native-country": "United-States",
}
