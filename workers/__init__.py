"""The mlqueue worker: ``celery -A workers worker [--endpoints a,b]``.

Models are loaded once in the main process before the prefork pool starts, so the pool
processes share them, and followed from then on (``workers/rollout.py``); each pool
process opens its own database connections.
"""

from shared.celery_app import app
from workers import tasks
from workers.deliveries import DeadLetters
from workers.leases import LeaseRenewal
from workers.rollout import ENDPOINTS_OPTION, ModelServing

__all__ = ["app", "tasks"]

app.user_options["worker"].add(ENDPOINTS_OPTION)
app.steps["worker"].add(ModelServing)
app.steps["worker"].add(LeaseRenewal)
app.steps["consumer"].add(DeadLetters)
