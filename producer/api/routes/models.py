"""Models: list an endpoint's versions, promote, roll back, retire (as `mlq models`)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from producer.api import idempotency
from producer.api.auth import require
from producer.api.routes.common import ERRORS, json_response
from producer.api.schemas import LifecycleRequest, ModelInfo
from shared import lifecycle
from shared.db.engine import session_scope
from shared.db.holdings import live_holders
from shared.registry import list_algorithms
from shared.settings import get_settings

router = APIRouter(tags=["models"], responses=ERRORS, dependencies=[Depends(require("admin"))])


def _models(endpoint: str | None) -> list[dict[str, Any]]:
    # A worker says what it holds every MLQ_MODEL_POLL_SECONDS: three missed means gone.
    within = timedelta(seconds=3 * get_settings().model_poll_s + 5)
    with session_scope() as session:
        rows = list_algorithms(session, endpoint=endpoint)
        holders = live_holders(session, within=within)
    return [{**a.as_dict(), "workers": holders.get(a.id, [])} for a in rows]


@router.get("/v1/models", summary="Every model version", response_model=list[ModelInfo])
async def models(endpoint: str | None = Query(None, max_length=128)) -> Response:
    """Endpoint, name, version, status, runtime, hash, who registered it and when, and
    which live workers hold it."""
    return json_response(await asyncio.to_thread(_models, endpoint))


def _who(request: Request) -> str:
    key = getattr(request.state, "api_key", None)
    return f"api key #{key.id} {key.name}"[:128] if key else "api (auth off)"


async def _change(request: Request, change: Any, **kwargs: Any) -> Response:
    def run() -> dict[str, Any]:
        with session_scope() as session:
            return dict(change(session, created_by=_who(request), **kwargs).as_dict())

    async def answer() -> tuple[int, Any]:
        return 200, await asyncio.to_thread(run)

    return await idempotency.idempotent(request, await request.body(), answer)


@router.post(
    "/v1/endpoints/{endpoint}/models/{name}/{version}/promote",
    summary="Make a version the endpoint's production model",
    response_model=ModelInfo,
)
async def promote(
    request: Request,
    body: LifecycleRequest | None = None,
    endpoint: str = Path(min_length=1, max_length=128),
    name: str = Path(min_length=1, max_length=128),
    version: str = Path(min_length=1, max_length=128),
) -> Response:
    """The current production model goes to staging; a status-history row says who and why."""
    reason = body.reason if body else ""
    return await _change(
        request, lifecycle.promote, endpoint=endpoint, name=name, version=version, reason=reason
    )


@router.post(
    "/v1/endpoints/{endpoint}/rollback",
    summary="Put back the previous production model",
    response_model=ModelInfo,
)
async def rollback(
    request: Request,
    body: LifecycleRequest | None = None,
    endpoint: str = Path(min_length=1, max_length=128),
) -> Response:
    reason = body.reason if body else ""
    return await _change(request, lifecycle.rollback, endpoint=endpoint, reason=reason)


@router.post(
    "/v1/endpoints/{endpoint}/models/{name}/{version}/retire",
    summary="Take a version out of service",
    response_model=ModelInfo,
)
async def retire(
    request: Request,
    body: LifecycleRequest | None = None,
    endpoint: str = Path(min_length=1, max_length=128),
    name: str = Path(min_length=1, max_length=128),
    version: str = Path(min_length=1, max_length=128),
) -> Response:
    """Workers stop holding it; its rows stay."""
    reason = body.reason if body else ""
    return await _change(
        request, lifecycle.retire, endpoint=endpoint, name=name, version=version, reason=reason
    )
