"""``mlq serve``: the HTTP API (needs the ``api`` extra: ``pip install 'mlqueue[api]'``).

Usage::

    mlq serve                                   # 127.0.0.1:8000, one server process
    mlq serve --host 0.0.0.0 --port 8000 --workers 2

The same app runs directly with ``uvicorn producer.api.app:app``. With ``--workers``
above 1, Prometheus metrics of every server process are added up (multiprocess mode,
in a folder under MLQ_HOME).
"""

from __future__ import annotations

import os
import shutil

import click

from shared.cli_output import json_option

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (each batches its own concurrent predictions).",
)
@click.option("--access-log", is_flag=True, help="Log one line per request (costs throughput).")
@json_option
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the HTTP API: predictions, batches, feedback, models, A/B tests, and the
    tutorial's routes. OpenAPI document at /openapi.json, interactive docs at /docs.

    \b
        mlq serve --host 0.0.0.0 --port 8000 --workers 2
    """
    from producer.api.auth import is_loopback
    from shared.errors import ConfigurationError
    from shared.settings import get_settings

    try:
        import uvicorn
    except ImportError:
        raise click.ClickException(
            "the HTTP API needs the api extra: pip install 'mlqueue[api]'"
        ) from None
    settings = get_settings()
    if settings.api_auth == "off" and not is_loopback(host):
        raise ConfigurationError(
            f"MLQ_API_AUTH=off serves without API keys, so only on a loopback address "
            f"(--host 127.0.0.1), not {host}"
        )
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Fresh on every start: prometheus-client's files of dead processes would count.
        folder = settings.home / f"api-metrics-{port}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    uvicorn.run(
        "producer.api.app:app",
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        server_header=False,
        log_level="info",
    )
