"""The HTTP API's idempotency keys: the first request under a key claims it, a retry
finds the claim and gets the first answer.

Usage::

    claim = claim_key(session, owner="key:3", key="abc", method="POST", path="/v1/...",
                      body_sha256=..., request_id="...")
    if claim.new: ... do the work, then store_answer(...)
    else: ... replay claim.status_code / claim.response, or the prediction claim.request_id
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import IdempotencyKey


@dataclass(frozen=True)
class Claim:
    new: bool  # this request claimed the key: do the work
    method: str
    path: str
    body_sha256: str
    request_id: str | None
    status_code: int | None  # None while the first request is still being answered
    response: Any


def claim_key(
    session: Session,
    *,
    owner: str,
    key: str,
    method: str,
    path: str,
    body_sha256: str,
    request_id: str | None = None,
) -> Claim:
    """Claim ``key`` for this request, or return the claim an earlier request made.

    ``INSERT ... ON CONFLICT DO NOTHING`` on the key: of two requests racing with one
    key, exactly one claims it.
    """
    inserted = session.execute(
        insert(session, IdempotencyKey)
        .values(
            owner=owner,
            key=key,
            method=method,
            path=path,
            body_sha256=body_sha256,
            request_id=request_id,
        )
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(IdempotencyKey.key)
    ).scalar_one_or_none()
    if inserted is not None:
        return Claim(True, method, path, body_sha256, request_id, None, None)
    row = session.execute(
        select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    ).scalar_one()
    return Claim(
        False,
        row.method,
        row.path,
        row.body_sha256,
        row.request_id,
        row.status_code,
        row.response,
    )


def store_answer(
    session: Session, *, owner: str, key: str, status_code: int, response: Any
) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        .values(status_code=status_code, response=response)
    )


def release_key(session: Session, *, owner: str, key: str) -> None:
    """Forget a claim whose request failed before doing anything, so a retry can run."""
    session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    )
