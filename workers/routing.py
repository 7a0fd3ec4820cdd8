"""Which algorithm serves a request: the tutorial's selection, or the arm of a running
A/B test for the endpoint's default traffic."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.contracts import STATUS_AB_TESTING
from shared.registry import AlgorithmInfo, choose_algorithm
from shared.registry_cache import RegistryCache


@dataclass(frozen=True)
class Route:
    algorithm: AlgorithmInfo
    ab_test_id: int | None = None
    ab_arm: str | None = None


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
    entry = registry.entry(endpoint)
    test = entry.test
    if test is not None and (status == STATUS_AB_TESTING or (status is None and version is None)):
        arm = assign_arm(test.id, key, test.split)
        wanted = test.algorithm_a_id if arm == "A" else test.algorithm_b_id
        for algorithm in entry.candidates:
            if algorithm.id == wanted:
                return Route(algorithm, test.id, arm)
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
) -> list[Route]:
    """``route`` for many keys, selecting once when no A/B test applies."""
    test = registry.entry(endpoint).test
    if test is None or not (status == STATUS_AB_TESTING or (status is None and version is None)):
        single = route(registry, endpoint=endpoint, key="", status=status, version=version)
        return [single] * len(keys)
    return [route(registry, endpoint=endpoint, key=k, status=status, version=version) for k in keys]
