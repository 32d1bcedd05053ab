"""State: config, the key/model/settings registry, atomic JSON persistence, the usage store."""

from __future__ import annotations

from aiohttp import web

from appkeys import CONFIG, LIMITER, REGISTRY, USAGE
from state.limits import Limiter
from state.registry import Registry
from state.usage import UsageRecorder


def setup_state(app: web.Application) -> None:
    """Create the registry and usage recorder on the app."""
    config = app[CONFIG]
    app[REGISTRY] = Registry(config)
    app[USAGE] = UsageRecorder()
    app[LIMITER] = Limiter()
