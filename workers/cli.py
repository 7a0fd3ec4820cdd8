"""Commands of `mlq` that need the machine-learning stack, declared as entry points
(``mlqueue.commands`` in pyproject.toml) and loaded by the producer's CLI only when run.

Usage::

    mlq train            # only what is missing or broken
    mlq train --force    # everything
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shared.errors import MlqError


@click.command()
@click.option("--force", is_flag=True, help="Retrain even if intact artifacts exist.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Adult data file (default: the copy committed in data/adult/).",
)
def train(force: bool, data: Path | None) -> None:
    """Train the random forest and extra trees, write artifacts and register them.

    \b
        mlq train            # only what is missing or broken
        mlq train --force    # everything
    """
    from shared.settings import get_settings
    from workers.training import ADULT_DATA, train_missing

    artifacts = train_missing(
        get_settings().artifacts_dir,
        force=force,
        data_path=data or ADULT_DATA,
        on_start=lambda spec: click.echo(f"training {spec.name} {spec.version} ...", err=True),
    )
    for artifact, trained in artifacts:
        m = artifact.manifest
        click.echo(
            f"{m['name']} {m['version']}: {'trained' if trained else 'up to date'}, "
            f"held-out accuracy {m['metrics']['accuracy']:.4f}, {artifact.folder}"
        )
    _register([a for a, _ in artifacts])


def _register(artifacts: list[Any]) -> None:
    from shared.db.engine import session_scope
    from shared.db.migrate import require_current_schema
    from shared.registry import register_artifacts

    try:
        require_current_schema()
    except MlqError as error:
        click.echo(f"models not registered yet ({error}); workers register them on start", err=True)
        return
    with session_scope() as session:
        register_artifacts(session, artifacts, created_by="mlq train")
