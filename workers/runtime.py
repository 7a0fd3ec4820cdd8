"""This process's state: the models it holds (loaded by its parent before forking, or on
demand) and its copy of the registry."""

from shared.registry_cache import RegistryCache
from shared.settings import get_settings
from workers.model_cache import ModelCache
from workers.model_store import ModelStore

_settings = get_settings()
assert _settings.model_cache is not None  # filled in by the settings themselves
STORE = ModelStore(ModelCache(_settings.model_cache))
REGISTRY = RegistryCache(_settings.registry_cache_s)
