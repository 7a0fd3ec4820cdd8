"""A model's life outside A/B tests: register a version, promote it, roll back, retire.

Every change appends a status-history row saying who, when and why; the database keeps
one production algorithm per endpoint, so a promotion demotes the current one in the
same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.ab.running import running_test
from shared.contracts import DEFAULT_STATUS, STATUS_AB_TESTING
from shared.db.models import Endpoint, MLAlgorithm, MLAlgorithmStatus
from shared.errors import ConfigurationError, NoAlgorithmError
from shared.model_store import put_blob, sha256_of_bytes
from shared.registry import (
    AlgorithmInfo,
    endpoint_candidates,
    find_algorithm,
    get_algorithm,
    register_algorithm,
    set_status,
)

RETIRED = "retired"
# Where a production algorithm goes when another replaces it: still served on request
# (status "staging"), so a rollback is instant.
REPLACED = "staging"


def register_version(
    session: Session,
    *,
    endpoint: str,
    name: str,
    version: str,
    artifact: bytes,
    serving: bytes | None,
    manifest: dict[str, Any],
    status: str,
    created_by: str,
    reason: str,
) -> tuple[AlgorithmInfo, bool]:
    """Store a model's files and register the version; (its entry, whether it is new).

    The same file again is a no-op. Registering with status production promotes it in
    the same transaction.
    """
    artifact_sha256 = sha256_of_bytes(artifact)
    existing = find_algorithm(session, endpoint=endpoint, name=name, version=version)
    if existing is not None and existing.artifact_sha256 == artifact_sha256:
        return existing, False
    put_blob(session, artifact)
    serving_sha256 = put_blob(session, serving) if serving is not None else artifact_sha256
    info = register_algorithm(
        session,
        endpoint=endpoint,
        name=name,
        version=version,
        initial_status=REPLACED if status == DEFAULT_STATUS else status,
        description=manifest.get("description", ""),
        code=manifest.get("estimator", ""),
        owner=created_by,
        artifact_sha256=artifact_sha256,
        created_by=created_by,
        reason=reason,
        kind=manifest["kind"],
        runtime=manifest["runtime"],
        runtime_note=manifest.get("runtime_note", ""),
        serving_sha256=serving_sha256,
        classes=manifest.get("classes") or None,
        manifest=manifest,
    )
    if status == DEFAULT_STATUS and info.status != DEFAULT_STATUS:
        info = promote(
            session,
            endpoint=endpoint,
            name=name,
            version=version,
            created_by=created_by,
            reason=reason,
        )
    return info, True


def _require(session: Session, *, endpoint: str, name: str, version: str) -> AlgorithmInfo:
    found = find_algorithm(session, endpoint=endpoint, name=name, version=version)
    if found is None:
        known = ", ".join(
            f"{a.name} {a.version}" for a in endpoint_candidates(session, endpoint=endpoint)
        )
        raise NoAlgorithmError(f"{endpoint} has no {name} {version}; it has: {known or 'none'}")
    return found


def _refuse_during_test(session: Session, *, endpoint: str, what: str) -> None:
    test = running_test(session, endpoint=endpoint)
    if test is not None:
        raise ConfigurationError(
            f"cannot {what} while A/B test #{test.id} runs on {endpoint}: stop it first "
            f"(`mlq ab stop {test.id}`)"
        )


def production_of(session: Session, *, endpoint: str) -> AlgorithmInfo | None:
    current = [
        a for a in endpoint_candidates(session, endpoint=endpoint) if a.status == DEFAULT_STATUS
    ]
    return current[0] if current else None


def promote(
    session: Session, *, endpoint: str, name: str, version: str, created_by: str, reason: str
) -> AlgorithmInfo:
    """Make a version the endpoint's production algorithm; the one it replaces goes to
    staging. A no-op for the production algorithm itself."""
    target = _require(session, endpoint=endpoint, name=name, version=version)
    if target.status == DEFAULT_STATUS:
        return target
    _refuse_during_test(session, endpoint=endpoint, what=f"promote {name} {version}")
    current = production_of(session, endpoint=endpoint)
    if current is not None:
        set_status(
            session,
            algorithm_id=current.id,
            status=REPLACED,
            created_by=created_by,
            reason=f"replaced by {name} {version}: {reason}",
        )
    set_status(
        session, algorithm_id=target.id, status=DEFAULT_STATUS, created_by=created_by, reason=reason
    )
    return get_algorithm(session, algorithm_id=target.id)


def rollback(session: Session, *, endpoint: str, created_by: str, reason: str) -> AlgorithmInfo:
    """Put back the algorithm that was in production before the current one."""
    current = production_of(session, endpoint=endpoint)
    endpoint_id = session.execute(select(Endpoint.id).where(Endpoint.name == endpoint)).scalar_one()
    earlier = session.execute(
        select(MLAlgorithmStatus.algorithm_id)
        .where(
            MLAlgorithmStatus.endpoint_id == endpoint_id,
            MLAlgorithmStatus.status == DEFAULT_STATUS,
            MLAlgorithmStatus.algorithm_id != (current.id if current else -1),
        )
        .order_by(MLAlgorithmStatus.id.desc())
        .limit(1)
    ).scalar()
    if earlier is None:
        raise NoAlgorithmError(f"{endpoint} has no earlier production algorithm to roll back to")
    previous = get_algorithm(session, algorithm_id=earlier)
    return promote(
        session,
        endpoint=endpoint,
        name=previous.name,
        version=previous.version,
        created_by=created_by,
        reason=f"rollback: {reason}" if reason else "rollback",
    )


def retire(
    session: Session, *, endpoint: str, name: str, version: str, created_by: str, reason: str
) -> AlgorithmInfo:
    """Take a version out of service: workers stop holding it; its rows stay."""
    target = _require(session, endpoint=endpoint, name=name, version=version)
    if target.status == DEFAULT_STATUS:
        raise ConfigurationError(
            f"{name} {version} is the production algorithm of {endpoint}: promote another "
            "one first (or `mlq models rollback`)"
        )
    if target.status == STATUS_AB_TESTING:
        _refuse_during_test(session, endpoint=endpoint, what=f"retire {name} {version}")
    if target.status != RETIRED:
        set_status(
            session, algorithm_id=target.id, status=RETIRED, created_by=created_by, reason=reason
        )
    return get_algorithm(session, algorithm_id=target.id)


def set_isolated(session: Session, *, endpoint: str, isolated: bool) -> None:
    """Route an endpoint's work to queues of its own (or back to the shared ones)."""
    endpoint_candidates(session, endpoint=endpoint)  # UnknownEndpointError if none
    session.execute(update(Endpoint).where(Endpoint.name == endpoint).values(isolated=isolated))


def status_history(session: Session, *, endpoint: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            MLAlgorithmStatus.created_at,
            MLAlgorithm.name,
            MLAlgorithm.version,
            MLAlgorithmStatus.status,
            MLAlgorithmStatus.created_by,
            MLAlgorithmStatus.reason,
        )
        .join(MLAlgorithm, MLAlgorithm.id == MLAlgorithmStatus.algorithm_id)
        .join(Endpoint, Endpoint.id == MLAlgorithmStatus.endpoint_id)
        .where(Endpoint.name == endpoint)
        .order_by(MLAlgorithmStatus.id)
    )
    return [
        {
            "at": at.isoformat(),
            "algorithm": name,
            "version": version,
            "status": status,
            "by": by,
            "reason": reason,
        }
        for at, name, version, status, by, reason in rows
    ]
