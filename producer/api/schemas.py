"""The API's documents as pydantic models: request bodies of the admin routes (parsed
by FastAPI), and every answer's shape for the OpenAPI document. The prediction routes
parse their bodies with orjson instead (pydantic off the hot path) and declare the same
schemas for the document only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import (
    DECISION_RULES,
    DEFAULT_ENDPOINT,
    EXAMPLE_RECORD,
    LIVE_MODES,
    MAX_REQUEST_ID_LENGTH,
    MODE_SPLIT,
    RULE_SEQUENTIAL,
)
from shared.db.api_keys import SCOPES

Open = ConfigDict(extra="allow")


class ProblemDocument(BaseModel):
    """An error (RFC 9457): ``code`` is stable, ``field`` names what it is about."""

    model_config = Open
    type: str
    title: str
    status: int
    code: str
    detail: str
    field: str | None = None
    instance: str | None = None


class PredictionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"record": EXAMPLE_RECORD}]}
    )
    record: dict[str, Any] = Field(
        description="The features, named as the model's schema names them"
    )
    status: str | None = Field(None, description="Select by status (default: production)")
    version: str | None = Field(None, description="Select by version")
    assignment_key: str | None = Field(
        None,
        description="Keeps a caller in one arm of a running A/B test (default: the request id)",
    )
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REQUEST_ID_LENGTH,
        description="Your own id: sent once, however often the request is retried",
    )


class Algorithm(BaseModel):
    model_config = Open
    id: int
    endpoint: str
    name: str
    version: str
    status: str
    sha256: str | None = None


class ErrorInfo(BaseModel):
    model_config = Open
    code: str
    message: str
    field: str | None = None


class Links(BaseModel):
    self: str


class PredictionResult(BaseModel):
    """A request's result: final (OK or ERROR) once a worker recorded it."""

    model_config = Open
    request_id: str
    status: Literal["OK", "ERROR", "QUEUED", "RUNNING"]
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None
    algorithm: Algorithm | None = None
    error: ErrorInfo | None = None
    links: Links | None = None


class BatchStatus(BaseModel):
    model_config = Open
    batch_id: str
    endpoint: str
    state: Literal["submitting", "running", "done"]
    total: int | None
    done: int
    ok: int
    failed: int
    rate_per_s: float | None
    created_at: str
    submitted_at: str | None


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    label: str = Field(max_length=128)


class FeedbackRequest(BaseModel):
    """One label, or many (``items``)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str | None = Field(None, min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    label: str | None = Field(None, max_length=128)
    items: list[FeedbackItem] | None = Field(None, max_length=100_000)


class FeedbackOutcome(BaseModel):
    model_config = Open
    recorded: int
    replaced: list[dict[str, Any]]
    early: list[str]
    unknown: list[str]
    invalid: list[dict[str, Any]]


class ModelInfo(BaseModel):
    model_config = Open
    id: int
    endpoint: str
    name: str
    version: str
    status: str


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=1000, description="Why, for the status history")


class ABTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = DEFAULT_ENDPOINT
    a: str | None = Field(
        None, description="The control, NAME or NAME@VERSION (default: the production one)"
    )
    b: str = Field(description="The challenger, NAME or NAME@VERSION")
    duration_s: float = Field(gt=0, le=366 * 24 * 3600, description="How long it runs, in seconds")
    mode: Literal[LIVE_MODES] = MODE_SPLIT  # type: ignore[valid-type]
    rule: Literal[DECISION_RULES] = RULE_SEQUENTIAL  # type: ignore[valid-type]
    split: float = Field(0.5, gt=0, lt=1, description="Share of traffic for B (split mode)")
    min_labelled: int = Field(200, ge=1, le=1_000_000_000)
    min_coverage: float = Field(0.5, ge=0, le=1, description="Share of requests labelled")
    label_delay_s: float = Field(
        0, ge=0, le=366 * 24 * 3600, description="How long labels take to come, seconds"
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    guardrail_alpha: float = Field(0.05, gt=0, lt=1)
    latency_margin: float = Field(
        0.2, ge=0, le=1000, description="B's latency allowed above A's, as a share of A's"
    )
    title: str | None = Field(None, max_length=256)


class ABTestSummary(BaseModel):
    model_config = Open
    id: int
    title: str


class KeyDocument(BaseModel):
    model_config = Open
    id: int
    name: str
    scopes: list[Literal[SCOPES]]  # type: ignore[valid-type]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
