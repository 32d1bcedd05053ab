"""State: config, the key/model/settings registry, atomic JSON persistence, the usage store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from appkeys import CONFIG, LIMITER, REGISTRY, USAGE
from state.limits import Limiter
from state.registry import Registry
from state.usage import UsageRecorder

log = logging.getLogger(__name__)


async def _registry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load state.json (a broken file stops startup), watch for changes, flush at shutdown."""
    from state.reload import watch
    from state.secrets import apply_configured_password
    from state.store import StateFile
    from state.writer import StateWriter

    registry = app[REGISTRY]
    writer = StateWriter(registry, StateFile(app[CONFIG].data_path))
    pre_start = registry.current()
    await writer.start(pre_start)
    registry.writer = writer
    await apply_configured_password(registry)
    if registry.setting("auth") == "none":
        log.warning("!!! auth: none - /v1 accepts requests WITHOUT an API key. Use this only "
                    "on a trusted network. !!!")
    task = asyncio.create_task(watch(app), name="state-watch")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()


def setup_state(app: web.Application) -> None:
    """Create the registry, usage recorder and limiter; load and save state in cleanup_ctx."""
    config = app[CONFIG]
    app[REGISTRY] = Registry(config)
    app[USAGE] = UsageRecorder()
    app[LIMITER] = Limiter()
    app.cleanup_ctx.append(_registry_ctx)
