"""This process's loaded models, filled by the worker's parent before it forks."""

from workers.model_store import ModelStore

STORE = ModelStore()
