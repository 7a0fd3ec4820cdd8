"""A model's life on SQLite: immutable versions, promote, roll back, retire, with a
status-history row each saying who and why."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import MLAlgorithmStatus, ModelBlob
from shared.errors import ArtifactMismatchError, ConfigurationError, NoAlgorithmError
from shared.lifecycle import (
    promote,
    register_version,
    retire,
    rollback,
    set_isolated,
    status_history,
)
from shared.model_store import read_blob
from shared.registry import isolated_endpoints, list_algorithms


def add(session: Session, version: str, content: bytes = b"", status: str = "testing") -> Any:
    manifest = {"kind": "classifier", "runtime": "onnx", "classes": ["a", "b"]}
    info, created = register_version(
        session,
        endpoint="e",
        name="forest",
        version=version,
        artifact=content or f"model {version}".encode(),
        serving=b"onnx " + (content or version.encode()),
        manifest=manifest,
        status=status,
        created_by="alice",
        reason=f"adding {version}",
    )
    session.commit()
    return info, created


def statuses(session: Session) -> dict[str, str]:
    return {a.version: a.status for a in list_algorithms(session, endpoint="e")}


def test_a_version_names_one_file_forever(session: Session) -> None:
    first, created = add(session, "1")
    assert created and first.classes == ("a", "b")
    again, created_again = add(session, "1")
    assert not created_again and again.id == first.id
    with pytest.raises(ArtifactMismatchError, match="registered with another file"):
        add(session, "1", content=b"retrained on other data")
    session.rollback()
    assert read_blob(session, sha256=first.artifact_sha256) == b"model 1"
    assert session.execute(select(func.count()).select_from(ModelBlob)).scalar_one() == 2


def test_registering_as_production_promotes_and_demotes_to_staging(session: Session) -> None:
    add(session, "1", status="production")
    add(session, "2", status="production")
    assert statuses(session) == {"1": "staging", "2": "production"}


def test_promote_rollback_and_retire_leave_a_history_of_who_and_why(session: Session) -> None:
    add(session, "1", status="production")
    add(session, "2")
    promote(session, endpoint="e", name="forest", version="2", created_by="bob", reason="better")
    assert statuses(session) == {"1": "staging", "2": "production"}
    back = rollback(session, endpoint="e", created_by="carol", reason="latency")
    assert back.version == "1" and statuses(session) == {"1": "production", "2": "staging"}
    retire(session, endpoint="e", name="forest", version="2", created_by="dan", reason="done")
    assert statuses(session)["2"] == "retired"
    session.commit()
    history = [
        (h["version"], h["status"], h["by"], h["reason"])
        for h in status_history(session, endpoint="e")
    ]
    assert history == [
        ("1", "staging", "alice", "adding 1"),
        ("1", "production", "alice", "adding 1"),
        ("2", "testing", "alice", "adding 2"),
        ("1", "staging", "bob", "replaced by forest 2: better"),
        ("2", "production", "bob", "better"),
        ("2", "staging", "carol", "replaced by forest 1: rollback: latency"),
        ("1", "production", "carol", "rollback: latency"),
        ("2", "retired", "dan", "done"),
    ]
    active = session.execute(
        select(func.count()).select_from(MLAlgorithmStatus).where(MLAlgorithmStatus.active)
    ).scalar_one()
    assert active == 2


def test_the_production_model_cannot_be_retired_and_a_rollback_needs_an_earlier_one(
    session: Session,
) -> None:
    add(session, "1", status="production")
    with pytest.raises(ConfigurationError, match="promote another one first"):
        retire(session, endpoint="e", name="forest", version="1", created_by="x", reason="")
    with pytest.raises(NoAlgorithmError, match="no earlier production algorithm"):
        rollback(session, endpoint="e", created_by="x", reason="")
    with pytest.raises(NoAlgorithmError, match="has no forest 9"):
        promote(session, endpoint="e", name="forest", version="9", created_by="x", reason="")


def test_an_endpoint_can_be_isolated_and_back(session: Session) -> None:
    add(session, "1")
    set_isolated(session, endpoint="e", isolated=True)
    assert isolated_endpoints(session) == ["e"]
    set_isolated(session, endpoint="e", isolated=False)
    assert isolated_endpoints(session) == []


def test_endpoint_names_must_fit_queue_names_and_urls(session: Session) -> None:
    with pytest.raises(ConfigurationError, match="not a valid name"):
        register_version(
            session,
            endpoint="bad name/with slash",
            name="m",
            version="1",
            artifact=b"x",
            serving=None,
            manifest={"kind": "classifier", "runtime": "sklearn"},
            status="testing",
            created_by="x",
            reason="",
        )
