"""The model registry: endpoints, algorithm versions and their status history; selection.

A version is immutable: (endpoint, name, version) names one artifact hash forever. The
same file registered again is a no-op; another file under an existing version is
refused (and PostgreSQL refuses to change a stored hash, whatever code tries).
Registration is safe when many processes run it at once: every insert is ``ON CONFLICT
DO NOTHING`` against a unique key the database enforces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.contracts import DEFAULT_STATUS
from shared.db.dialect import insert
from shared.db.models import STATUSES, Endpoint, MLAlgorithm, MLAlgorithmStatus
from shared.errors import (
    AmbiguousSelectionError,
    ArtifactMismatchError,
    ConfigurationError,
    NoAlgorithmError,
    UnknownEndpointError,
)

_ACTIVE = MLAlgorithmStatus.active.is_(True)
# Endpoint names travel in queue names ("predict.<endpoint>") and URLs.
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


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
    kind: str = "classifier"
    runtime: str = "onnx"
    runtime_note: str = ""
    serving_sha256: str | None = None
    created_by: str = ""
    classes: tuple[str, ...] = ()

    def ref(self) -> dict[str, object]:
        """The short form that goes into results: which model answered, by its hash."""
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "sha256": self.artifact_sha256,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def ensure_endpoint(session: Session, *, name: str, owner: str) -> int:
    session.execute(
        insert(session, Endpoint)
        .values(name=name, owner=owner)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.execute(select(Endpoint.id).where(Endpoint.name == name)).scalar_one()


def _check_names(endpoint: str, name: str, version: str) -> None:
    if not ENDPOINT_NAME.fullmatch(endpoint):
        raise ConfigurationError(
            f"endpoint {endpoint!r} is not a valid name: letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 128 characters"
        )
    for what, value in (("name", name), ("version", version)):
        if not value.strip() or len(value) > 128 or "\x00" in value:
            raise ConfigurationError(f"the {what} {value!r} must be 1 to 128 characters")


def register_algorithm(
    session: Session,
    *,
    endpoint: str,
    name: str,
    version: str,
    initial_status: str,
    description: str,
    owner: str,
    artifact_sha256: str | None,
    created_by: str,
    code: str = "",
    reason: str = "registered",
    **details: Any,
) -> AlgorithmInfo:
    """Register an algorithm row once; later calls leave its status history alone.

    ``details`` fills the other columns (kind, runtime, runtime_note, serving_sha256,
    manifest). A version already registered with another artifact hash is refused.
    """
    if initial_status not in STATUSES:
        raise ConfigurationError(f"status {initial_status!r} is not one of {', '.join(STATUSES)}")
    _check_names(endpoint, name, version)
    endpoint_id = ensure_endpoint(session, name=endpoint, owner=owner)
    session.execute(
        insert(session, MLAlgorithm)
        .values(
            endpoint_id=endpoint_id,
            name=name,
            version=version,
            description=description,
            code=code,
            owner=owner,
            artifact_sha256=artifact_sha256,
            created_by=created_by,
            **details,
        )
        .on_conflict_do_nothing(index_elements=["endpoint_id", "name", "version"])
    )
    algorithm_id, stored = session.execute(
        select(MLAlgorithm.id, MLAlgorithm.artifact_sha256).where(
            MLAlgorithm.endpoint_id == endpoint_id,
            MLAlgorithm.name == name,
            MLAlgorithm.version == version,
        )
    ).one()
    if stored != artifact_sha256:
        raise ArtifactMismatchError(
            f"{endpoint} {name} {version} is registered with another file (sha256 "
            f"{(stored or 'none')[:12]}..., this one is {(artifact_sha256 or 'none')[:12]}...): "
            "a version names one artifact forever; register this file as a new version"
        )
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
                    reason=reason,
                )
                .on_conflict_do_nothing(index_elements=["algorithm_id"], index_where=text("active"))
            )
    except IntegrityError:
        raise ConfigurationError(
            f"cannot register {name} {version} as production on {endpoint}: the endpoint "
            "already has a production algorithm (register it as staging, then "
            "`mlq models promote`)"
        ) from None
    return get_algorithm(session, algorithm_id=algorithm_id)


def find_algorithm(
    session: Session, *, endpoint: str, name: str, version: str
) -> AlgorithmInfo | None:
    row = session.execute(
        _algorithms_query().where(
            Endpoint.name == endpoint, MLAlgorithm.name == name, MLAlgorithm.version == version
        )
    ).one_or_none()
    return _info(row) if row else None


def _algorithms_query() -> Select[*tuple[Any, ...]]:
    return (
        select(
            MLAlgorithm.id,
            Endpoint.name.label("endpoint"),
            MLAlgorithm.name,
            MLAlgorithm.version,
            MLAlgorithmStatus.status,
            MLAlgorithm.description,
            MLAlgorithm.owner,
            MLAlgorithm.artifact_sha256,
            MLAlgorithm.created_at,
            MLAlgorithm.kind,
            MLAlgorithm.runtime,
            MLAlgorithm.runtime_note,
            MLAlgorithm.serving_sha256,
            MLAlgorithm.created_by,
            MLAlgorithm.classes,
        )
        .join(Endpoint, MLAlgorithm.endpoint_id == Endpoint.id)
        .join(
            MLAlgorithmStatus,
            (MLAlgorithmStatus.algorithm_id == MLAlgorithm.id) & _ACTIVE,
        )
        .order_by(Endpoint.name, MLAlgorithm.name, MLAlgorithm.version)
    )


def _info(row: Any) -> AlgorithmInfo:
    fields = dict(row._mapping)
    fields["classes"] = tuple(fields["classes"] or ())
    return AlgorithmInfo(**fields)


def list_algorithms(
    session: Session, *, endpoint: str | None = None, endpoints: Sequence[str] | None = None
) -> list[AlgorithmInfo]:
    query = _algorithms_query()
    if endpoint is not None:
        query = query.where(Endpoint.name == endpoint)
    if endpoints is not None:
        query = query.where(Endpoint.name.in_(list(endpoints)))
    return [_info(row) for row in session.execute(query)]


def get_algorithm(session: Session, *, algorithm_id: int) -> AlgorithmInfo:
    row = session.execute(_algorithms_query().where(MLAlgorithm.id == algorithm_id)).one()
    return _info(row)


def get_manifest(session: Session, *, algorithm_id: int) -> dict[str, Any]:
    manifest = session.execute(
        select(MLAlgorithm.manifest).where(MLAlgorithm.id == algorithm_id)
    ).scalar_one()
    if manifest is None:
        raise ConfigurationError(f"algorithm #{algorithm_id} has no manifest: register it again")
    return dict(manifest)


def labels_by_endpoint(session: Session) -> dict[str, frozenset[str] | None]:
    """What a request's true label may be, per endpoint: its classifiers' classes, or
    None where it serves a regressor (the label is the true value, a number)."""
    labels: dict[str, frozenset[str] | None] = {}
    for algorithm in list_algorithms(session):
        if algorithm.kind == "regressor":
            labels[algorithm.endpoint] = None
        elif labels.get(algorithm.endpoint, frozenset()) is not None:
            labels[algorithm.endpoint] = (labels.get(algorithm.endpoint) or frozenset()) | set(
                algorithm.classes
            )
    return labels


def input_columns(
    session: Session, *, endpoint: str, status: str | None = None, version: str | None = None
) -> list[str] | None:
    """The input columns of the model a request with this selection would get (None for
    one registered without a schema); selection errors as ``select_algorithm``."""
    algorithm = select_algorithm(session, endpoint=endpoint, status=status, version=version)
    manifest = session.execute(
        select(MLAlgorithm.manifest).where(MLAlgorithm.id == algorithm.id)
    ).scalar_one()
    if not manifest or "schema" not in manifest:
        return None
    return [column["name"] for column in manifest["schema"]["columns"]]


def list_endpoints(session: Session) -> list[str]:
    return list(session.execute(select(Endpoint.name).order_by(Endpoint.name)).scalars())


def isolated_endpoints(session: Session) -> list[str]:
    query = select(Endpoint.name).where(Endpoint.isolated.is_(True)).order_by(Endpoint.name)
    return list(session.execute(query).scalars())


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
            f"{', '.join(list_endpoints(session)) or 'none (run `mlq train` or `mlq models add`)'}"
        )
    return candidates


def select_algorithm(
    session: Session, *, endpoint: str, status: str | None = None, version: str | None = None
) -> AlgorithmInfo:
    candidates = endpoint_candidates(session, endpoint=endpoint)
    return choose_algorithm(candidates, endpoint=endpoint, status=status, version=version)


def set_status(
    session: Session, *, algorithm_id: int, status: str, created_by: str, reason: str = ""
) -> None:
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
            reason=reason,
        )
    )
    session.flush()
