"""This process's state: the models its parent loaded before forking, and its copy of
the registry."""

from shared.registry_cache import RegistryCache
from shared.settings import get_settings
from workers.model_store import ModelStore

STORE = ModelStore()
REGISTRY = RegistryCache(get_settings().registry_cache_s)
