"""Which algorithm serves a request: the tutorial's selection, or the arm of a running
A/B test for the endpoint's default traffic (in a shadow test, the control, with the
challenger to score the same record beside it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.ab.running import RunningTest
from shared.contracts import MODE_SHADOW, STATUS_AB_TESTING
from shared.errors import NoAlgorithmError
from shared.registry import AlgorithmInfo, choose_algorithm
from shared.registry_cache import EndpointEntry, RegistryCache


@dataclass(frozen=True)
class Route:
    algorithm: AlgorithmInfo
    ab_test_id: int | None = None
    ab_arm: str | None = None
    shadow: AlgorithmInfo | None = None  # scores the record too; its answer is only kept


def assign_arm(test_id: int, key: str, split: float) -> str:
    """ "A" or "B": the same test and key always get the same arm, and a share ``split``
    of keys get "B". The test id is hashed too, so one key is not in the same arm of
    every test."""
    digest = hashlib.blake2b(f"{test_id}:{key}".encode(), digest_size=8).digest()
    return "B" if int.from_bytes(digest, "big") / 2**64 < split else "A"


def route(
    registry: RegistryCache,
    *,
    endpoint: str,
    key: str,
    status: str | None = None,
    version: str | None = None,
) -> Route:
    """While a test runs, default requests (no status, no version) and the tutorial's
    explicit ``status="ab_testing"`` go to the arm ``key`` is assigned to."""
    return _route(
        registry.entry(endpoint), endpoint=endpoint, key=key, status=status, version=version
    )


def _takes_part(test: RunningTest | None, status: str | None, version: str | None) -> bool:
    return test is not None and (
        status == STATUS_AB_TESTING or (status is None and version is None)
    )


def _route(
    entry: EndpointEntry, *, endpoint: str, key: str, status: str | None, version: str | None
) -> Route:
    test = entry.test
    if test is not None and _takes_part(test, status, version):
        by_id = {algorithm.id: algorithm for algorithm in entry.candidates}
        if test.mode == MODE_SHADOW:
            if test.algorithm_a_id in by_id:
                return Route(
                    by_id[test.algorithm_a_id], test.id, "A", by_id.get(test.algorithm_b_id)
                )
        else:
            arm = assign_arm(test.id, key, test.split)
            wanted = test.algorithm_a_id if arm == "A" else test.algorithm_b_id
            if wanted in by_id:
                return Route(by_id[wanted], test.id, arm)
    return Route(
        choose_algorithm(entry.candidates, endpoint=endpoint, status=status, version=version)
    )


def route_many(
    registry: RegistryCache,
    *,
    endpoint: str,
    keys: list[str],
    status: str | None = None,
    version: str | None = None,
    algorithm_id: int | None = None,
) -> list[Route]:
    """``route`` for many keys against one reading of the registry, selecting once when
    no A/B test applies. ``algorithm_id`` names one version of the endpoint whatever its
    status (a replay's challenger): no test applies to it."""
    entry = registry.entry(endpoint)
    if algorithm_id is not None:
        for algorithm in entry.candidates:
            if algorithm.id == algorithm_id:
                return [Route(algorithm)] * len(keys)
        raise NoAlgorithmError(f"endpoint {endpoint!r} serves no algorithm #{algorithm_id}")
    if not _takes_part(entry.test, status, version):
        single = _route(entry, endpoint=endpoint, key="", status=status, version=version)
        return [single] * len(keys)
    return [_route(entry, endpoint=endpoint, key=k, status=status, version=version) for k in keys]
