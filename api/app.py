"""Assembly of the /v1 API: upstream client, catalog, middleware and routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from api.catalog import ModelCatalog, startup_refresh
from api.chat import ChatHandler
from api.endpoints import Endpoints
from api.images import image_session_ctx
from api.pipeline import v1_middleware
from api.streaming import OpenStreams
from api.upstream import OllamaClient
from appkeys import CATALOG, CONFIG, REGISTRY, UPSTREAM


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the one long-lived upstream session; discover models in the background."""
    client = app[UPSTREAM]
    client.set_base_url(app[REGISTRY].setting("ollama_url"))
    await client.start()
    discovery = asyncio.ensure_future(startup_refresh(app[CATALOG]))
    yield
    discovery.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await discovery
    await client.close()


def setup_api(app: web.Application) -> None:
    """Create the upstream client and catalog, the /v1 middleware and routes."""
    config = app[CONFIG]
    app[UPSTREAM] = OllamaClient(config.ollama_url, connect_timeout=config.connect_timeout,
                                 read_timeout=config.read_timeout)
    app[CATALOG] = ModelCatalog(app[UPSTREAM], app[REGISTRY])
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(image_session_ctx)
    streams = OpenStreams()
    app.on_shutdown.append(streams.on_shutdown)
    app.middlewares.append(v1_middleware)
    chat = ChatHandler(streams)
    other = Endpoints(streams)
    app.router.add_post("/v1/chat/completions", chat.handle)
    app.router.add_post("/v1/completions", other.completions)
    app.router.add_post("/v1/embeddings", other.embeddings)
    app.router.add_get("/v1/models", other.list_models)
    app.router.add_get("/v1/models/{id:.*}", other.get_model)
