"""The app's long-lived objects and their lifecycles, listed once and in order.

Each `cleanup_ctx` opens one resource complete at startup and closes it at shutdown, in the
reverse order: the state (registry, its writer and the file watcher), the usage store, the
upstream session (with model discovery in the background) and the image-fetch session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from api.core.catalog import ModelCatalog, startup_refresh
from api.core.images import image_session_ctx
from api.core.streaming import StreamService
from api.core.upstream import OllamaClient
from appkeys import CATALOG, CONFIG, LIMITER, METRICS, REGISTRY, STARTED, STREAMS, UPSTREAM, USAGE
from logs import shown_url
from state.limits import Limiter
from state.registry import Registry
from state.usage import UsageRecorder
from state.usage_metrics import UsageMetrics

log = logging.getLogger(__name__)


class Started:
    """Whether startup has completed (state loaded, usage store open): /readyz reads it."""

    def __init__(self) -> None:
        self.value = False


async def _state_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load state.json (a broken file stops startup), watch for changes, flush at shutdown."""
    from state.reload import watch
    from state.secrets import apply_configured_password
    from state.store import StateFile
    from state.writer import StateWriter

    registry = app[REGISTRY]
    writer = StateWriter(registry, StateFile(app[CONFIG].data_path))
    await writer.start(registry.current())
    registry.writer = writer
    await apply_configured_password(registry)
    if registry.setting("auth") == "none":
        log.warning(
            "!!! auth: none - /v1 accepts requests WITHOUT an API key. Use this only "
            "on a trusted network. !!!"
        )
    task = asyncio.create_task(watch(registry), name="state-watch")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()


async def _usage_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the usage database once state has loaded; flush and close it at shutdown."""
    await app[USAGE].start()
    app[STARTED].value = True
    try:
        yield
    finally:
        app[STARTED].value = False
        await app[USAGE].close()


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


def follow_ollama_url(registry: Registry, client: OllamaClient, catalog: ModelCatalog) -> None:
    """Point the upstream at a changed effective ollama_url (reload, admin edit, CLI)."""
    url = registry.setting("ollama_url")
    if url.rstrip("/") == client.base_url:
        return
    client.set_base_url(url)
    catalog.invalidate()
    log.info("Ollama URL is now %s", shown_url(url))


def setup_resources(app: web.Application) -> None:
    """Create every shared object and register its lifecycle (no I/O here)."""
    config = app[CONFIG]
    registry = app[REGISTRY] = Registry(config)
    app[USAGE] = UsageRecorder(config.data_path, registry.setting)
    app[LIMITER] = Limiter()
    app[STARTED] = Started()
    app[METRICS] = UsageMetrics()
    app[METRICS].watch_recorder(app[USAGE])
    streams = app[STREAMS] = StreamService()
    app.on_shutdown.append(streams.on_shutdown)
    client = app[UPSTREAM] = OllamaClient(
        config.ollama_url, connect_timeout=config.connect_timeout, read_timeout=config.read_timeout
    )
    catalog = app[CATALOG] = ModelCatalog(client, registry)
    registry.listeners.append(lambda: follow_ollama_url(registry, client, catalog))
    app.cleanup_ctx.extend([_state_ctx, _usage_ctx, _upstream_ctx, image_session_ctx])
