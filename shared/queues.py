"""Which queue a producer sends an endpoint's work to: the shared one, or an isolated
endpoint's own (``mlq models isolate``), read from the registry at most every few
seconds."""

from __future__ import annotations

from cachetools import TTLCache, cached

from shared.contracts import endpoint_queue
from shared.db.engine import session_scope
from shared.registry import isolated_endpoints

# How long a producer trusts what it read: isolating an endpoint reaches every producer
# within this time (messages sent to the shared queue meanwhile are still served).
ISOLATION_CACHE_S = 5.0


@cached(TTLCache(maxsize=1, ttl=ISOLATION_CACHE_S))
def _isolated() -> frozenset[str]:
    with session_scope() as session:
        return frozenset(isolated_endpoints(session))


def queue_for(queue: str, endpoint: str) -> str:
    return endpoint_queue(queue, endpoint) if endpoint in _isolated() else queue
