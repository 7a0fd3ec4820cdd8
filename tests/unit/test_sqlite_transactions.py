"""On SQLite a savepoint must nest inside the transaction, not start and commit one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.ab.start import start_test
from shared.db.engine import make_engine
from shared.db.migrate import upgrade
from shared.db.models import ABTest
from shared.registry import list_algorithms, register_algorithm


def test_a_failure_after_starting_a_test_leaves_nothing_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ab.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        for name, status in (("random forest", "production"), ("extra trees", "testing")):
            register_algorithm(
                session,
                endpoint="e",
                name=name,
                version="1",
                initial_status=status,
                description="",
                code="",
                owner="t",
                artifact_sha256=None,
                created_by="t",
            )
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        start_test(
            session,
            endpoint="e",
            a="random forest",
            b="extra trees",
            duration=timedelta(hours=1),
            created_by="t",
        )
        raise RuntimeError("something after the start failed")
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(ABTest)).scalar_one() == 0
        assert {a.name: a.status for a in list_algorithms(session)}["extra trees"] == "testing"
    engine.dispose()
