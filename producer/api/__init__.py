"""The HTTP API: mlqueue for producers in any language (``mlq serve``).

Usage::

    mlq serve --host 127.0.0.1 --port 8000 --workers 2
    uvicorn producer.api.app:app --port 8000          # the same app, run directly

The OpenAPI document is at ``/openapi.json``, rendered at ``/docs``. docs/api.md is the
reference. Like the rest of the producer it enqueues by task name and never imports
worker code.
"""
