"""``Idempotency-Key``: a POST retried with the same key gets the first answer.

The first request under a key (per API key) claims it in the database, does the work
and stores its answer; a retry replays that answer. A retry that arrives while the first
is still being answered gets 409 (try again shortly); a key reused with another body or
path gets 422. An answer of 500 or more is not kept, so a retry can run again. A
prediction stores its request id when it claims the key instead: a retry answers for
that request and never sends a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from producer.api.auth import owner_of
from producer.api.problems import Problem
from shared.db.engine import session_scope
from shared.db.idempotency import Claim, claim_key, release_key, store_answer

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def key_of(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            422,
            "invalid_request",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters",
            field=HEADER,
        )
    return key


def _claim(**kwargs: Any) -> Claim:
    with session_scope() as session:
        return claim_key(session, **kwargs)


def _store(**kwargs: Any) -> None:
    with session_scope() as session:
        store_answer(session, **kwargs)


def _release(**kwargs: Any) -> None:
    with session_scope() as session:
        release_key(session, **kwargs)


async def claim(request: Request, key: str, body: bytes, request_id: str | None = None) -> Claim:
    """Claim the key for this request, or the earlier claim (checked to be this request's)."""
    digest = hashlib.sha256(body).hexdigest()
    found = await asyncio.to_thread(
        _claim,
        owner=owner_of(request),
        key=key,
        method=request.method,
        path=request.url.path,
        body_sha256=digest,
        request_id=request_id,
    )
    if not found.new and (found.body_sha256 != digest or found.path != request.url.path):
        raise Problem(
            422,
            "idempotency_key_reused",
            f"{HEADER} {key[:80]!r} was used for another request "
            f"({found.method} {found.path}); use a new key for a new request",
            field=HEADER,
        )
    return found


async def idempotent(
    request: Request, body: bytes, run: Callable[[], Awaitable[tuple[int, Any]]]
) -> Response:
    """Answer with ``run()``'s (status, document), or replay the first answer under the
    request's Idempotency-Key."""
    key = key_of(request)
    if key is None:
        return _json(*await run())
    found = await claim(request, key, body)
    if not found.new:
        if found.status_code is None:
            raise Problem(
                409,
                "idempotency_key_in_use",
                f"a request with {HEADER} {key[:80]!r} is still being answered; retry shortly",
                field=HEADER,
            )
        return _json(found.status_code, found.response, replayed=True)
    owner = owner_of(request)
    try:
        status, document = await run()
    except Problem as problem:
        if problem.status >= 500:
            await asyncio.to_thread(_release, owner=owner, key=key)
        else:
            await asyncio.to_thread(
                _store, owner=owner, key=key, status_code=problem.status, response=problem.body()
            )
        raise
    except BaseException:
        await asyncio.shield(asyncio.to_thread(_release, owner=owner, key=key))
        raise
    stored = orjson.loads(orjson.dumps(document, default=str))
    await asyncio.to_thread(_store, owner=owner, key=key, status_code=status, response=stored)
    return _json(status, document)


def _json(status: int, document: Any, *, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(orjson.dumps(document, default=str), status, headers, media_type=media)
