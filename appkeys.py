"""Every typed key stored on the aiohttp Application, declared in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

if TYPE_CHECKING:
    from aiohttp import ClientSession

    from api.core.catalog import ModelCatalog
    from api.core.resources import Started
    from api.core.streaming import StreamService
    from api.core.upstream import OllamaClient
    from state.config import Config
    from state.limits import Limiter
    from state.registry import Registry
    from state.usage import UsageRecorder
    from state.usage_metrics import UsageMetrics
    from web.auth import AuthState

# What handlers read shared objects from: an app, or a request's config_dict (a sub-app
# request sees its own app first, then the root's).
AppState = web.Application | ChainMapProxy

CONFIG: web.AppKey[Config] = web.AppKey("config")
UPSTREAM: web.AppKey[OllamaClient] = web.AppKey("upstream")
REGISTRY: web.AppKey[Registry] = web.AppKey("registry")
CATALOG: web.AppKey[ModelCatalog] = web.AppKey("catalog")
USAGE: web.AppKey[UsageRecorder] = web.AppKey("usage")
LIMITER: web.AppKey[Limiter] = web.AppKey("limiter")
AUTH: web.AppKey[AuthState] = web.AppKey("auth")
IMAGES: web.AppKey[ClientSession] = web.AppKey("images")  # image URL fetches (api.core.images)
STARTED: web.AppKey[Started] = web.AppKey("started")
METRICS: web.AppKey[UsageMetrics] = web.AppKey("metrics")
STREAMS: web.AppKey[StreamService] = web.AppKey("streams")  # open streams, ended at shutdown
ADMIN: web.AppKey[web.Application] = web.AppKey("admin")  # the /admin sub-app (root only)
