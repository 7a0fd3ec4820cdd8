"""Recording feedback: validate each label against the model's classes, store it, and
say for each request what happened (recorded, replaced, early, unknown, invalid)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.contracts import FeedbackResult, key_problem
from shared.db.engine import session_scope
from shared.db.feedback import (
    applied_result,
    claim_message,
    existing_requests,
    previous_labels,
    record_applied,
    upsert_feedback,
)
from shared.json_safe import json_safe

MAX_ID_LENGTH = 128
MAX_LABEL_LENGTH = 128  # feedback.label


def _item_error(item: Any) -> str | None:
    """Why one item cannot be stored: only that item is refused, never its message."""
    if not isinstance(item, Mapping):
        return "a feedback item must be an object with request_id and label"
    request_id, label = item.get("request_id"), item.get("label")
    problem = key_problem(request_id, MAX_ID_LENGTH)
    if problem:
        return f"request_id {problem}"
    if isinstance(label, bool) or not isinstance(label, str | int | float):
        return "label must be a string (a regressor's true value may be a number)"
    problem = key_problem(str(label), MAX_LABEL_LENGTH)
    return f"label {problem}" if problem else None


def label_problem(label: str, allowed: frozenset[str] | None) -> str | None:
    """Why a label cannot be a request's true answer: not one of the classifier's classes,
    or, for a regressor (``allowed`` None), not a finite number."""
    if allowed is None:
        try:
            number = float(label)
        except ValueError:
            number = math.nan
        return (
            None
            if math.isfinite(number)
            else f"label {label!r} is not a number (a regressor's true value)"
        )
    if label in allowed:
        return None
    return f"label {label!r} is not one of the model's classes: {', '.join(sorted(allowed))}"


def serve_feedback(
    items: Sequence[Any],
    *,
    classes: Mapping[str, frozenset[str] | None],
    was_issued: Callable[[str], bool],
    message_id: str | None = None,
) -> FeedbackResult:
    """``classes`` maps each endpoint to its models' labels (None for a regressor, whose
    label is the true value); ``was_issued`` says whether
    a request id without a row was ever sent (its row may still come).

    ``message_id`` (the task id) makes a redelivered message a no-op that returns the
    first delivery's result: no label is counted twice (``times_given``).
    """
    result: FeedbackResult = {
        "recorded": 0,
        "replaced": [],
        "early": [],
        "unknown": [],
        "invalid": [],
    }
    well_formed = []
    for item in items:
        error = _item_error(item)
        if error:
            given = item.get("request_id") if isinstance(item, Mapping) else None
            given = json_safe(str(given or ""))
            result["invalid"].append({"request_id": given, "error": error})
        else:
            well_formed.append((item["request_id"], str(item["label"])))
    sets = [labels for labels in classes.values() if labels is not None]
    every_class = frozenset().union(*sets)
    any_regressor = any(labels is None for labels in classes.values())
    with session_scope() as session:
        # Claimed first: a second delivery running at the same time waits on the claim
        # until this transaction ends, then finds it taken and returns its result.
        if message_id is not None and not claim_message(session, task_id=message_id):
            return applied_result(session, task_id=message_id)  # type: ignore[return-value]
        ids = list(dict.fromkeys(request_id for request_id, _ in well_formed))
        rows = existing_requests(session, ids=ids)
        stored = previous_labels(session, ids=ids)
        # In order, as if sent one by one: a later label for the same id replaces an
        # earlier one, and every invalid label is reported, even one replaced later.
        labels: dict[str, str] = {}
        replaced: dict[str, str] = {}
        for request_id, label in well_formed:
            if request_id in rows:
                problem = label_problem(label, classes.get(rows[request_id], every_class))
            else:  # any endpoint's label will do until the row says which endpoint
                problem = label_problem(label, every_class)
                if problem and any_regressor and label_problem(label, None) is None:
                    problem = None
            if problem:
                result["invalid"].append({"request_id": request_id, "error": problem})
                continue
            before = labels.get(request_id, stored.get(request_id))
            if before is not None and before != label:
                replaced.setdefault(request_id, before)
            labels[request_id] = label
        upsert_feedback(session, labels=labels)
        _classify(result, labels, replaced, rows, was_issued)
        if message_id is not None:
            # In the labels' transaction: both are committed, or neither.
            record_applied(session, task_id=message_id, result=json_safe(dict(result)))
    return result


def _classify(
    result: FeedbackResult,
    labels: dict[str, str],
    replaced: dict[str, str],
    rows: Mapping[str, str],
    was_issued: Callable[[str], bool],
) -> None:
    for request_id, label in labels.items():
        if request_id in replaced and replaced[request_id] != label:
            result["replaced"].append(
                {"request_id": request_id, "previous": replaced[request_id], "label": label}
            )
        if request_id in rows:
            result["recorded"] += 1
        elif was_issued(request_id):
            result["early"].append(request_id)
        else:
            result["unknown"].append(request_id)
