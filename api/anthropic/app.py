"""The /v1/messages sub-app: Anthropic's Messages API behind the pipeline, in its error shape."""

from __future__ import annotations

from aiohttp import web

from api.anthropic.errors import error_body
from api.anthropic.handler import count_tokens, messages
from api.core.errors import APIError
from api.core.pipeline import pipeline_middleware


def anthropic_error(err: APIError) -> web.Response:
    """An error as Anthropic's JSON: {"type": "error", "error": {"type", "message"}}."""
    return web.json_response(
        error_body(err.status, err.message), status=err.status, headers=err.headers
    )


def anthropic_app() -> web.Application:
    """POST /v1/messages and POST /v1/messages/count_tokens (added at /v1/messages)."""
    app = web.Application(middlewares=[pipeline_middleware("anthropic", anthropic_error)])
    app.router.add_post("", messages)
    app.router.add_post("/count_tokens", count_tokens)
    return app
