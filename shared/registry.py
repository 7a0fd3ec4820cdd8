"""The model registry: endpoints, algorithms and their status history; and selection.

Registration is idempotent and safe when many workers start at once: every insert is
``ON CONFLICT DO NOTHING`` against a unique key the database enforces, so two
processes racing to register the same algorithm end with one row, not two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.contracts import DEFAULT_STATUS
from shared.db.dialect import insert
from shared.db.models import STATUSES, Endpoint, MLAlgorithm, MLAlgorithmStatus
from shared.errors import (
    AmbiguousSelectionError,
    ConfigurationError,
    NoAlgorithmError,
    UnknownEndpointError,
)

_ACTIVE = MLAlgorithmStatus.active.is_(True)
_MANIFEST_FIELDS = ("endpoint", "name", "version", "initial_status", "description", "code", "owner")


@dataclass(frozen=True)
class AlgorithmInfo:
    id: int
    endpoint: str
    name: str
    version: str
    status: str
    description: str
    owner: str
    artifact_sha256: str | None
    created_at: datetime

    def ref(self) -> dict[str, object]:
        """The short form that goes into results."""
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "name": self.name,
            "version": self.version,
            "status": self.status,
        }


def ensure_endpoint(session: Session, *, name: str, owner: str) -> int:
    session.execute(
        insert(session, Endpoint)
        .values(name=name, owner=owner)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.execute(select(Endpoint.id).where(Endpoint.name == name)).scalar_one()


def register_algorithm(
    session: Session,
    *,
    endpoint: str,
    name: str,
    version: str,
    initial_status: str,
    description: str,
    code: str,
    owner: str,
    artifact_sha256: str | None,
    created_by: str,
) -> AlgorithmInfo:
    """Register an algorithm once; later calls leave its status history alone."""
    if initial_status not in STATUSES:
        raise ConfigurationError(f"status {initial_status!r} is not one of {', '.join(STATUSES)}")
    endpoint_id = ensure_endpoint(session, name=endpoint, owner=owner)
    values = dict(
        endpoint_id=endpoint_id,
        name=name,
        version=version,
        description=description,
        code=code,
        owner=owner,
        artifact_sha256=artifact_sha256,
    )
    statement = insert(session, MLAlgorithm).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["endpoint_id", "name", "version"],
            set_={"artifact_sha256": statement.excluded.artifact_sha256},
        )
    )
    algorithm_id = session.execute(
        select(MLAlgorithm.id).where(
            MLAlgorithm.endpoint_id == endpoint_id,
            MLAlgorithm.name == name,
            MLAlgorithm.version == version,
        )
    ).scalar_one()
    try:
        with session.begin_nested():
            session.execute(
                insert(session, MLAlgorithmStatus)
                .values(
                    algorithm_id=algorithm_id,
                    endpoint_id=endpoint_id,
                    status=initial_status,
                    active=True,
                    created_by=created_by,
                )
                .on_conflict_do_nothing(index_elements=["algorithm_id"], index_where=text("active"))
            )
    except IntegrityError:
        raise ConfigurationError(
            f"cannot register {name} {version} as production on {endpoint}: "
            "the endpoint already has a production algorithm"
        ) from None
    return get_algorithm(session, algorithm_id=algorithm_id)


def register_manifest(
    session: Session, *, manifest: dict[str, Any], artifact_sha256: str, created_by: str
) -> AlgorithmInfo:
    """Register the algorithm an artifact manifest describes."""
    fields = {key: manifest[key] for key in _MANIFEST_FIELDS}
    return register_algorithm(
        session, **fields, artifact_sha256=artifact_sha256, created_by=created_by
    )


class RegistrableArtifact(Protocol):
    """A model artifact as registration needs it (``workers.artifacts.Artifact``)."""

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def sha256(self) -> str: ...


def register_artifacts(
    session: Session, artifacts: Iterable[RegistrableArtifact], *, created_by: str
) -> list[AlgorithmInfo]:
    """Register the algorithm of every artifact (idempotent, race-safe)."""
    return [
        register_manifest(
            session,
            manifest=artifact.manifest,
            artifact_sha256=artifact.sha256,
            created_by=created_by,
        )
        for artifact in artifacts
    ]


def _algorithms_query() -> Select[*tuple[Any, ...]]:
    return (
        select(
            MLAlgorithm.id,
            Endpoint.name,
            MLAlgorithm.name,
            MLAlgorithm.version,
            MLAlgorithmStatus.status,
            MLAlgorithm.description,
            MLAlgorithm.owner,
            MLAlgorithm.artifact_sha256,
            MLAlgorithm.created_at,
        )
        .join(Endpoint, MLAlgorithm.endpoint_id == Endpoint.id)
        .join(
            MLAlgorithmStatus,
            (MLAlgorithmStatus.algorithm_id == MLAlgorithm.id) & _ACTIVE,
        )
        .order_by(Endpoint.name, MLAlgorithm.name, MLAlgorithm.version)
    )


def list_algorithms(session: Session, *, endpoint: str | None = None) -> list[AlgorithmInfo]:
    query = _algorithms_query()
    if endpoint is not None:
        query = query.where(Endpoint.name == endpoint)
    return [AlgorithmInfo(*row) for row in session.execute(query)]


def get_algorithm(session: Session, *, algorithm_id: int) -> AlgorithmInfo:
    row = session.execute(_algorithms_query().where(MLAlgorithm.id == algorithm_id)).one()
    return AlgorithmInfo(*row)


def list_endpoints(session: Session) -> list[str]:
    return list(session.execute(select(Endpoint.name).order_by(Endpoint.name)).scalars())


def choose_algorithm(
    candidates: Sequence[AlgorithmInfo],
    *,
    endpoint: str,
    status: str | None = None,
    version: str | None = None,
) -> AlgorithmInfo:
    """The tutorial's selection over an endpoint's algorithms: the production one by
    default; ``status`` and ``version`` narrow it; none and several are distinct errors."""
    wanted_status = status or DEFAULT_STATUS
    matches = [
        a
        for a in candidates
        if a.status == wanted_status and (version is None or a.version == version)
    ]
    if len(matches) == 1:
        return matches[0]
    wanted = f"status {wanted_status!r}" + (f" and version {version!r}" if version else "")
    if not matches:
        known = ", ".join(f"{a.name} {a.version} ({a.status})" for a in candidates) or "none"
        raise NoAlgorithmError(
            f"endpoint {endpoint!r} has no algorithm with {wanted}; it has: {known}"
        )
    listed = ", ".join(f"{a.name} {a.version}" for a in matches)
    raise AmbiguousSelectionError(
        f"{len(matches)} algorithms of endpoint {endpoint!r} have {wanted} ({listed}): "
        "name a version"
    )


def endpoint_candidates(session: Session, *, endpoint: str) -> list[AlgorithmInfo]:
    """The endpoint's algorithms with their current status; UnknownEndpointError if none."""
    candidates = list_algorithms(session, endpoint=endpoint)
    if not candidates and endpoint not in list_endpoints(session):
        raise UnknownEndpointError(
            f"unknown endpoint {endpoint!r}; known endpoints: "
            f"{', '.join(list_endpoints(session)) or 'none (run `mlq train`)'}"
        )
    return candidates


def select_algorithm(
    session: Session, *, endpoint: str, status: str | None = None, version: str | None = None
) -> AlgorithmInfo:
    candidates = endpoint_candidates(session, endpoint=endpoint)
    return choose_algorithm(candidates, endpoint=endpoint, status=status, version=version)


def set_status(session: Session, *, algorithm_id: int, status: str, created_by: str) -> None:
    """Append a status to the history and make it the active one."""
    if status not in STATUSES:
        raise ConfigurationError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    endpoint_id = session.execute(
        select(MLAlgorithm.endpoint_id).where(MLAlgorithm.id == algorithm_id)
    ).scalar_one()
    session.execute(
        update(MLAlgorithmStatus)
        .where(MLAlgorithmStatus.algorithm_id == algorithm_id, _ACTIVE)
        .values(active=False)
    )
    session.add(
        MLAlgorithmStatus(
            algorithm_id=algorithm_id,
            endpoint_id=endpoint_id,
            status=status,
            active=True,
            created_by=created_by,
        )
    )
    session.flush()
