"""Code that producers and workers both use: settings, the Celery app, contracts, database."""
