"""Fixtures of the unit tests: no network, a SQLite database of a test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from shared.db.engine import make_engine
from shared.db.migrate import upgrade


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A session on a migrated SQLite database of this test's own."""
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        yield session
    engine.dispose()
