"""What a worker does once, in its parent process, before the pool forks."""

from __future__ import annotations

import logging

from shared.db.engine import dispose_all, session_scope
from shared.db.migrate import require_current_schema
from shared.registry import register_artifacts
from shared.settings import get_settings
from workers.model_store import LoadedModel, ModelStore

log = logging.getLogger(__name__)


def register_models(models: list[LoadedModel], *, created_by: str) -> None:
    """Make sure the registry knows every loaded model (idempotent, race-safe)."""
    with session_scope() as session:
        register_artifacts(session, (model.artifact for model in models), created_by=created_by)


def prepare_worker(store: ModelStore, *, hostname: str) -> None:
    settings = get_settings()
    for what, where in settings.describe().items():
        log.info("%s: %s", what, where)
    require_current_schema()
    models = store.load_all(settings.artifacts_dir)
    register_models(models, created_by=f"worker {hostname}")
    # The children open their own connections; none may inherit the parent's.
    dispose_all()
