"""``python -m producer.cli`` is the same as ``mlq``."""

from producer.cli.main import cli

cli()
