"""Assembly of the /v1 API: upstream client, catalog, middleware and routes."""

from __future__ import annotations

from aiohttp import web

from api.core.pipeline import v1_middleware
from api.core.streaming import OpenStreams
from api.openai.chat import ChatHandler
from api.openai.endpoints import Endpoints


def setup_api(app: web.Application) -> None:
    """The /v1 middleware and routes."""
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
