"""API keys as bearer tokens, and the scopes each route needs.

A key is looked up by the sha256 of its secret; a key seen in the last
``KEY_CACHE_S`` seconds is not looked up again, so a revoked key stops working within
that time. ``MLQ_API_AUTH=off`` lets requests in without a key, but only those that
arrive on a loopback address: the switch cannot open a server bound to a network.

Usage::

    router = APIRouter(dependencies=[Depends(require("predict"))])
    await authorize(request, "predict")      # the same, inside a hot route
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated

from cachetools import TTLCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.api.problems import Problem
from shared.db.api_keys import KeyInfo, hash_secret, key_for_secret
from shared.db.engine import session_scope
from shared.settings import get_settings

KEY_CACHE_S = 5.0
ANONYMOUS = "anonymous"

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `mlq keys create`, sent as `Authorization: Bearer mlq_...`",
)
# sha256 of a secret -> its key (None: no live key has it). Bounded, so that clients
# sending random tokens cannot grow it without limit.
_known: TTLCache[str, KeyInfo | None] = TTLCache(maxsize=10_000, ttl=KEY_CACHE_S)


def _lookup(secret: str) -> KeyInfo | None:
    with session_scope() as session:
        return key_for_secret(session, secret=secret)


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def auth_off_here(request: Request) -> bool:
    """Whether this request may go without a key: auth off, and served on loopback."""
    server = request.scope.get("server")
    return get_settings().api_auth == "off" and is_loopback(server[0] if server else None)


def owner_of(request: Request) -> str:
    """Who sent the request, for idempotency keys: "key:<id>", or "anonymous"."""
    key: KeyInfo | None = getattr(request.state, "api_key", None)
    return f"key:{key.id}" if key else ANONYMOUS


async def authorize(request: Request, scope: str) -> None:
    """Let the request in with a live key that has ``scope`` (or with none, where auth is
    off); else raise the 401 or 403 problem."""
    header = request.headers.get("authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        if auth_off_here(request):
            return
        raise Problem(
            401,
            "unauthorized",
            "an API key is required: send `Authorization: Bearer <key>` "
            "(create one with `mlq keys create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    secret = secret.strip()
    digest = hash_secret(secret)
    if digest in _known:
        key = _known[digest]
    else:
        key = _known[digest] = await asyncio.to_thread(_lookup, secret)
    if key is None:
        raise Problem(
            401,
            "unauthorized",
            "this API key is not valid (unknown, or revoked)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if scope not in key.scopes:
        raise Problem(
            403,
            "forbidden",
            f"this API key (#{key.id} {key.name!r}) has scopes "
            f"{', '.join(sorted(key.scopes))}; this operation needs {scope!r}",
        )
    request.state.api_key = key


def require(scope: str) -> Callable[..., Awaitable[None]]:
    """A route dependency: ``authorize`` with ``scope``; the bearer scheme is declared
    for the OpenAPI document."""

    async def check(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        await authorize(request, scope)

    return check
