"""Serving statistics per endpoint and algorithm over a time window, from the rows."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from shared.db.dialect import dialect_name
from shared.db.models import Feedback, MLAlgorithm, MLRequest

PERCENTILES = (0.5, 0.95, 0.99)


def serving_stats(
    session: Session, *, since: datetime, endpoint: str | None = None
) -> list[dict[str, Any]]:
    """Per (endpoint, algorithm): requests, errors, latency p50/p95/p99 (ms), labelled
    requests and, over them, a classifier's accuracy or a regressor's mean absolute and
    root mean squared error (its feedback is the true value). Requests no algorithm
    could serve count under algorithm null."""
    labelled = and_(MLRequest.status == "OK", Feedback.label.is_not(None))
    # A regressor's rows carry a value; its labels are numbers (checked when given).
    error = case(
        (
            and_(labelled, MLRequest.value.is_not(None)),
            cast(Feedback.label, Float) - MLRequest.value,
        )
    )
    postgres = dialect_name(session) == "postgresql"
    percentiles = (
        [func.percentile_cont(q).within_group(MLRequest.latency_ms) for q in PERCENTILES]
        if postgres
        else []
    )
    group = (MLRequest.endpoint, MLAlgorithm.name, MLAlgorithm.version)
    query = (
        select(
            *group,
            func.count(),
            func.count().filter(MLRequest.status == "ERROR"),
            func.count().filter(labelled),
            func.sum(case((and_(labelled, Feedback.label == MLRequest.label), 1), else_=0)),
            func.count(error),
            func.avg(func.abs(error)),
            func.avg(error * error),
            *percentiles,
        )
        .outerjoin(MLAlgorithm, MLAlgorithm.id == MLRequest.algorithm_id)
        .outerjoin(Feedback, Feedback.request_id == MLRequest.id)
        .where(MLRequest.created_at >= since)
        .group_by(*group)
        .order_by(*group)
    )
    if endpoint is not None:
        query = query.where(MLRequest.endpoint == endpoint)
    rows = session.execute(query).all()
    latencies = {} if postgres else _latencies(session, since=since, endpoint=endpoint)
    stats = []
    for row in rows:
        name, version = row[1], row[2]
        requests, errors, labelled_count, correct = row[3], row[4], row[5], int(row[6] or 0)
        regression, mae, mse = row[7], row[8], row[9]
        quantiles = list(row[10:]) if postgres else _quantiles(latencies[(row[0], name, version)])
        stats.append(
            {
                "endpoint": row[0],
                "algorithm": name,
                "version": version,
                "requests": requests,
                "errors": errors,
                "latency_p50_ms": _round(quantiles[0]),
                "latency_p95_ms": _round(quantiles[1]),
                "latency_p99_ms": _round(quantiles[2]),
                "labelled": labelled_count,
                "accuracy": round(correct / labelled_count, 4)
                if labelled_count and not regression
                else None,
                "mae": _round(mae) if regression else None,
                "rmse": _round(math.sqrt(mse)) if regression else None,
            }
        )
    return stats


def _latencies(
    session: Session, *, since: datetime, endpoint: str | None
) -> dict[tuple[Any, ...], list[float]]:
    """SQLite has no percentile function: the embedded store is small, so sort here."""
    query = (
        select(MLRequest.endpoint, MLAlgorithm.name, MLAlgorithm.version, MLRequest.latency_ms)
        .outerjoin(MLAlgorithm, MLAlgorithm.id == MLRequest.algorithm_id)
        .where(MLRequest.created_at >= since, MLRequest.latency_ms.is_not(None))
    )
    if endpoint is not None:
        query = query.where(MLRequest.endpoint == endpoint)
    grouped: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for row_endpoint, name, version, latency in session.execute(query):
        if latency is not None:
            grouped[(row_endpoint, name, version)].append(latency)
    return grouped


def _quantiles(values: list[float]) -> list[float | None]:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return [None] * len(PERCENTILES)
    return [float(q) for q in np.quantile(values, PERCENTILES, method="linear")]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
