"""The OpenAI-compatible /v1 API: translation, streaming, the Ollama client."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api.upstream import OllamaClient
from appkeys import CONFIG, REGISTRY, UPSTREAM


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the one long-lived upstream session for the server's lifetime."""
    client = app[UPSTREAM]
    client.set_base_url(app[REGISTRY].setting("ollama_url"))
    await client.start()
    yield
    await client.close()


def setup_api(app: web.Application) -> None:
    """Create the upstream client and register the /v1 routes."""
    config = app[CONFIG]
    app[UPSTREAM] = OllamaClient(config.ollama_url, connect_timeout=config.connect_timeout,
                                 read_timeout=config.read_timeout)
    app.cleanup_ctx.append(_upstream_ctx)
