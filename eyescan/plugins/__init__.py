"""The plugin system: hook specifications, the registry, the Task base class and the scaffold."""

from eyescan.plugins.registry import (
    MIN_CONTRACT_VERSION,
    PluginInfo,
    Registry,
    get_registry,
    reset_registry,
)

__all__ = ["MIN_CONTRACT_VERSION", "PluginInfo", "Registry", "get_registry", "reset_registry"]
