"""Storing a shadow test's challenger answers, keyed by (test, request id): a redelivered
message writes none twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import ABShadowAnswer


def record_shadow_answers(
    executor: Session | Connection, *, rows: Sequence[dict[str, Any]]
) -> None:
    if rows:
        executor.execute(
            insert(executor, ABShadowAnswer).on_conflict_do_nothing(
                index_elements=["ab_test_id", "request_id"]
            ),
            list(rows),
        )
