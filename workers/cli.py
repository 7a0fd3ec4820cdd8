"""Commands of `mlq` that need the machine-learning stack, declared as entry points
(pyproject.toml) and loaded by the producer's CLI only when run.

Usage::

    mlq train                          # the built-in income classifiers, if missing
    mlq models add model.skops --endpoint iris --name forest --version 1 --sample sample.csv
"""

from __future__ import annotations

from pathlib import Path

import click

from shared.cli_output import emit, json_option, say


@click.command()
@click.option("--force", is_flag=True, help="Retrain even if intact bundles exist.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Adult data file, headerless as UCI ships it (default: data/adult/adult.data).",
)
@click.option(
    "--version",
    "version",
    default=None,
    help="Register as this version (default 0.0.1). Needed when other data or code gives "
    "another model: a version names one artifact forever.",
)
@json_option
def train(force: bool, data: Path | None, version: str | None) -> None:
    """Train the tutorial's random forest and extra trees and register them.

    \b
        mlq train                       # only what is missing or broken
        mlq train --force               # everything
        mlq train --data other.data --version 0.0.2
    """
    from shared.db.migrate import require_current_schema
    from shared.settings import get_settings
    from workers.training import ADULT_DATA, register_builtin, train_missing

    require_current_schema()
    trained = train_missing(
        get_settings().artifacts_dir,
        force=force or data is not None,
        data_path=data or ADULT_DATA,
        version=version,
        on_start=lambda spec: say(f"training {spec.name} ..."),
    )
    registered = register_builtin(trained, created_by="mlq train")
    report, lines = [], []
    for (_, bundle, fresh), (info, created) in zip(trained, registered, strict=True):
        report.append({**info.as_dict(), "trained": fresh, "registered": created})
        lines.append(
            f"{info.name} {info.version}: {'trained' if fresh else 'up to date'}, "
            f"{'registered' if created else 'already registered'} as {info.status}, "
            f"held-out accuracy {bundle.manifest['metrics']['accuracy']:.4f}, "
            f"sha256 {(info.artifact_sha256 or '')[:12]}"
        )
    emit(report, "\n".join(lines))


@click.command("add")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--endpoint", required=True, help="The endpoint that serves it (created if new).")
@click.option("--name", required=True, help="The algorithm's name, e.g. 'random forest'.")
@click.option("--version", "version", required=True, help="Its version: one file forever.")
@click.option(
    "--sample",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with a header: a few hundred training rows without the target. Gives the "
    "input schema (columns, types, categories, ranges, fill values).",
)
@click.option(
    "--status",
    type=click.Choice(["testing", "staging", "production"]),
    default="testing",
    show_default=True,
    help="production also promotes it (the current one goes to staging).",
)
@click.option("--description", default="", help="What it is.")
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Read a .joblib/.pkl file (loading a pickle runs code: only for files you trust).",
)
@click.option(
    "--refuse-missing",
    is_flag=True,
    help="Refuse nulls in columns the sample has none in, instead of filling them.",
)
@click.option("--reason", default="", help="Why, for the status history.")
@json_option
def models_add(
    model_file: Path,
    endpoint: str,
    name: str,
    version: str,
    sample: Path,
    status: str,
    description: str,
    trust_pickle: bool,
    refuse_missing: bool,
    reason: str,
) -> None:
    """Register a fitted scikit-learn model (estimator or pipeline, classifier or
    regressor); every running worker serves it within seconds, no restart.

    \b
        mlq models add model.skops --endpoint iris --name forest --version 1 \\
            --sample sample.csv --status production
    """
    import pandas as pd

    from shared.db.migrate import require_current_schema
    from workers.model_files import read_model_file
    from workers.registration import build_bundle, publish

    require_current_schema()
    estimator, source, source_format = read_model_file(model_file, trust_pickle=trust_pickle)
    say(f"checking {model_file.name} on {sample.name} ...")
    bundle = build_bundle(
        estimator,
        source=source,
        source_format=source_format,
        sample=pd.read_csv(sample),
        endpoint=endpoint,
        name=name,
        version=version,
        description=description,
        refuse_missing=refuse_missing,
    )
    info, created = publish(
        bundle, status=status, reason=reason or f"mlq models add {model_file.name}"
    )
    runtime = info.runtime + (f" ({info.runtime_note})" if info.runtime_note else "")
    outcome = "registered" if created else "already registered (the same file)"
    emit(
        {**info.as_dict(), "created": created},
        f"{endpoint} {name} {version}: {outcome} as {info.status}, served by {runtime}, "
        f"sha256 {(info.artifact_sha256 or '')[:12]}",
    )
