"""The mlqueue producer: ``from producer import Client`` and the ``mlq`` CLI.

It enqueues tasks by name and never imports worker code or loads a model.
"""

from producer.client import Client

__all__ = ["Client"]
