"""Marking request ids as issued in the result backend, as ``Client.predict`` does, so
that an id the API accepted is told apart from one never issued while it waits in the
queue (``GET /v1/predictions/{id}``, ``mlq result``).

With Redis the mark is ``SET NX``: it never overwrites a result, and it says whether the
id was issued before, which is how a retried client-chosen request id is sent only once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from celery import Celery

from producer.api.results import TaskResults
from shared.contracts import ISSUED_STATE
from shared.settings import get_settings


def _mark(request_id: str) -> bytes:
    return orjson.dumps(
        {
            "status": ISSUED_STATE,
            "result": None,
            "traceback": None,
            "children": [],
            "date_done": None,
            "task_id": request_id,
        }
    )


async def claim(results: TaskResults, request_id: str) -> bool:
    """Mark one id as issued; False when it had been issued (or answered) before."""
    if results.pushed:
        done = await results.redis.set(
            results.key(request_id),
            _mark(request_id),
            nx=True,
            ex=get_settings().result_expires_s,
        )
        return bool(done)
    return await asyncio.to_thread(_claim_elsewhere, results.app, request_id)


def _claim_elsewhere(app: Celery, request_id: str) -> bool:
    # No atomic set-if-absent in Celery's other backends: a race of two retries of one
    # id within milliseconds can send it twice there (its row is still written once).
    if app.backend.get_task_meta(request_id).get("status") != "PENDING":
        return False
    app.backend.store_result(request_id, None, ISSUED_STATE)
    return True


async def mark_sent(results: TaskResults, request_ids: Sequence[str]) -> None:
    """Mark ids already sent (one round trip for a group); other backends marked them
    before sending (``mark_before_sending``)."""
    if not results.pushed or not request_ids:
        return
    expires = get_settings().result_expires_s
    async with results.redis.pipeline(transaction=False) as pipe:
        for request_id in request_ids:
            pipe.set(results.key(request_id), _mark(request_id), nx=True, ex=expires)
        await pipe.execute()


def mark_before_sending(app: Celery, request_ids: Sequence[str]) -> None:
    """Other backends: written after sending, a mark could overwrite a finished result."""
    for request_id in request_ids:
        app.backend.store_result(request_id, None, ISSUED_STATE)
