"""The /v1 sub-app: OpenAI's routes, behind the pipeline with OpenAI's error shape."""

from __future__ import annotations

from aiohttp import web

from api.core.pipeline import pipeline_middleware
from api.openai.chat import ChatHandler
from api.openai.endpoints import Endpoints
from api.openai.errors import openai_error


def openai_app() -> web.Application:
    """Chat, completions, embeddings and models under /v1."""
    app = web.Application(middlewares=[pipeline_middleware("openai", openai_error)])
    chat = ChatHandler()
    other = Endpoints()
    app.router.add_post("/chat/completions", chat.handle)
    app.router.add_post("/completions", other.completions)
    app.router.add_post("/embeddings", other.embeddings)
    app.router.add_get("/models", other.list_models)
    app.router.add_get("/models/{id:.*}", other.get_model)
    return app
