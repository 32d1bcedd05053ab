"""Hot reload: config.yaml and state.json are watched and re-read without a restart.

A background task checks both files every `registry.poll_interval` seconds (mtime/size).
A changed config.yaml is parsed again: on success it replaces `registry.config`; an invalid edit is
refused with an ERROR naming the file and line, and the last good config stays in force.
The registry's listeners hear of every change (the upstream client follows `ollama_url`).
A state.json changed by someone else (the CLI) is reloaded so its keys work at once.
Settings in RESTART_SETTINGS are only read at startup; changing them logs a warning.
See state/registry.py for which setting wins where.
"""

from __future__ import annotations

import asyncio
import logging
import os

from state.config import ConfigError, load_config
from state.registry import Registry

log = logging.getLogger(__name__)
# Read once at startup (listening socket, files, cookie key, HTTP client, logging).
RESTART_SETTINGS = (
    "host",
    "port",
    "data_dir",
    "session_secret",
    "admin_password",
    "connect_timeout",
    "read_timeout",
    "max_body_bytes",
    "log_format",
    "log_level",
    "shutdown_timeout",
)


def _mtime(path: str | None) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


async def reload_config(registry: Registry) -> bool:
    """Re-read config.yaml now; True if a new config was applied."""
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
        log.warning(
            "config.yaml changed %s; that takes effect only after a restart", ", ".join(fixed)
        )
    was_open = registry.setting("auth") == "none"
    registry.replace_config(new)
    log.info("reloaded %s", path)
    if registry.setting("auth") == "none" and not was_open:
        log.warning(
            "!!! auth: none - /v1 now accepts requests WITHOUT an API key. Use this "
            "only on a trusted network. !!!"
        )
    return True


async def watch(registry: Registry) -> None:
    """Poll config.yaml and state.json for changes until cancelled."""
    seen = _mtime(registry.config.path)
    while True:
        await asyncio.sleep(registry.poll_interval)
        try:
            now = _mtime(registry.config.path)
            if now != seen and now is not None:
                seen = now
                await reload_config(registry)
            if registry.writer is not None:
                await registry.writer.reload_if_changed()
        except Exception:  # the watcher must survive anything; the cause goes to the log
            log.exception("state watcher failed; retrying")
