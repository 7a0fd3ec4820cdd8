"""Counting, for the fault tests, how many times each request was scored and written.

A row is keyed by its request id, so counting rows can never show a record scored twice
or a write repeated: these counters can. Off unless MLQ_TEST_COUNTS_URL names a Redis
database (hash ``scored`` and hash ``written``, request id to count); never set in
production.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import redis

from shared.settings import get_settings


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def count(kind: str, request_ids: Iterable[str]) -> None:
    url = get_settings().test_counts_url
    if not url:
        return
    pipe = _client(url).pipeline(transaction=False)
    for request_id in request_ids:
        pipe.hincrby(kind, request_id, 1)
    pipe.execute()
