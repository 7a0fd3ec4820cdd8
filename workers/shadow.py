"""A shadow test's challenger answers: scored beside the control's (workers/scoring.py),
written beside its rows. Nothing here may fail or hold up the control's answer: a
challenger that fails gets error answers, and answers that cannot be written are logged
and dropped (a lost pair leaves the paired test unbiased, only smaller)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from shared.ab.shadow import record_shadow_answers
from shared.contracts import PredictResult
from shared.db.engine import autocommit_connection
from shared.json_safe import json_safe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowAnswer:
    ab_test_id: int
    result: PredictResult  # the challenger's
    latency_ms: float  # the challenger's scoring time per record
    control_latency_ms: float  # the control's, on the same records, measured alike


def shadow_rows(
    answers: Sequence[ShadowAnswer], *, created_at: Mapping[str, datetime]
) -> list[dict[str, Any]]:
    """The rows of the answers whose request has a row written now (``created_at``, by
    request id: each shadow row carries its request's time)."""
    rows = []
    for answer in answers:
        result = answer.result
        when = created_at.get(result["request_id"])
        algorithm = result["algorithm"]
        if when is None or algorithm is None:
            continue
        error = json_safe(result["error"]) if result["error"] else None
        rows.append(
            {
                "ab_test_id": answer.ab_test_id,
                "request_id": result["request_id"],
                "algorithm_id": algorithm["id"],
                "status": result["status"],
                "label": result["label"],
                "probability": result["probability"],
                "value": result["value"],
                "error_code": error["code"] if error else None,
                "error_message": error["message"] if error else None,
                "latency_ms": round(answer.latency_ms, 3),
                "control_latency_ms": round(answer.control_latency_ms, 3),
                "created_at": when,
            }
        )
    return rows


def write_shadow_answers(rows: Sequence[dict[str, Any]]) -> None:
    """Write the rows by themselves, once the control's rows are committed; a failure is
    logged, never raised."""
    if not rows:
        return
    try:
        with autocommit_connection() as connection:
            record_shadow_answers(connection, rows=rows)
    except SQLAlchemyError:
        log.exception("shadow answers of %d requests not stored", len(rows))
