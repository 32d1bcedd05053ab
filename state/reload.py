"""Hot reload: config.yaml and state.json are watched and re-read without a restart.

A background task checks both files every `registry.poll_interval` seconds (mtime/size).
A changed config.yaml is parsed again: on success it replaces `registry.config` (the upstream
client follows a new `ollama_url` and the model catalog is invalidated); an invalid edit is
refused with an ERROR naming the file and line, and the last good config stays in force.
A state.json changed by someone else (the CLI) is reloaded so its keys work at once.
Settings in RESTART_SETTINGS are only read at startup; changing them logs a warning.
See state/registry.py for which setting wins where.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from aiohttp import web

from api.upstream import shown_url
from appkeys import CATALOG, REGISTRY, UPSTREAM
from state.config import Config, ConfigError, load_config

log = logging.getLogger(__name__)
# Read once at startup (listening socket, files, cookie key, HTTP client, logging).
RESTART_SETTINGS = ("host", "port", "data_dir", "session_secret", "admin_password",
                    "connect_timeout", "read_timeout", "max_body_bytes", "log_format",
                    "log_level", "shutdown_timeout")


def _mtime(path: str | None) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def apply_config(app: web.Application, new: Config) -> None:
    """Make `new` the running config and point the upstream client at its Ollama URL."""
    registry = app[REGISTRY]
    before = registry.setting("ollama_url")
    registry.config = new
    after_config_url(app, before)


def after_config_url(app: web.Application, before: str) -> None:
    """Follow a changed effective Ollama URL (config reload or admin edit)."""
    url = app[REGISTRY].setting("ollama_url")
    if url == before:
        return
    upstream = app.get(UPSTREAM)
    if upstream is not None:
        upstream.set_base_url(url)
    catalog: Any = app.get(CATALOG)
    if catalog is not None and hasattr(catalog, "invalidate"):
        catalog.invalidate()
    log.info("Ollama URL is now %s", shown_url(url))


async def reload_config(app: web.Application) -> bool:
    """Re-read config.yaml now; True if a new config was applied."""
    registry = app[REGISTRY]
    path = registry.config.path
    if not path:
        return False
    loop = asyncio.get_running_loop()
    try:
        new = await loop.run_in_executor(None, load_config, path)
    except ConfigError as exc:
        log.error("config reload refused, keeping the last good config: %s", exc)
        return False
    if new == registry.config:
        return False
    fixed = [n for n in RESTART_SETTINGS if getattr(new, n) != getattr(registry.config, n)]
    if fixed:
        log.warning("config.yaml changed %s; that takes effect only after a restart",
                    ", ".join(fixed))
    was_open = registry.setting("auth") == "none"
    apply_config(app, new)
    log.info("reloaded %s", path)
    if registry.setting("auth") == "none" and not was_open:
        log.warning("!!! auth: none - /v1 now accepts requests WITHOUT an API key. Use this "
                    "only on a trusted network. !!!")
    return True


async def watch(app: web.Application) -> None:
    """Poll config.yaml and state.json for changes until cancelled."""
    registry = app[REGISTRY]
    seen = _mtime(registry.config.path)
    while True:
        await asyncio.sleep(registry.poll_interval)
        try:
            now = _mtime(registry.config.path)
            if now != seen and now is not None:
                seen = now
                await reload_config(app)
            if registry.writer is not None:
                await registry.writer.reload_if_changed()
        except Exception:  # the watcher must survive anything; the cause goes to the log
            log.exception("state watcher failed; retrying")
