"""Schema migrations (Alembic), run by `mlq db upgrade` and by compose before workers start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db.engine import get_engine
from shared.errors import ConfigurationError
from shared.settings import get_settings, redact_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config is an INI parser: '%' must be doubled in URLs with escapes.
    config.set_main_option(
        "sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%")
    )
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | None = None) -> str | None:
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current_schema(url: str | None = None) -> None:
    """Refuse to serve against a database whose schema is not at the latest migration."""
    url = url or get_settings().database_url
    current, head = current_revision(url), head_revision()
    if current != head:
        raise ConfigurationError(
            f"the database at {redact_url(url)} is at schema revision {current or 'none'}, "
            f"not {head}: run `mlq db upgrade`"
        )
