"""The keys page: list with masked secrets and 7-day usage; forms call the admin JSON API."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from appkeys import REGISTRY, AppState
from state.registry import ApiKey
from web.pages_dashboard import base_url
from web.pages_models import list_models
from web.usage_api import key_usage_summary

log = logging.getLogger(__name__)


def key_row(key: ApiKey, model_names: list[str], now: float) -> dict[str, Any]:
    """One key as the list and its edit form show it (never the secret or its hash)."""
    expires_local = ""
    if key.expires_at is not None:
        # The browser's datetime-local input has no zone; UTC is what the page states.
        expires_local = datetime.fromtimestamp(key.expires_at, UTC).strftime("%Y-%m-%dT%H:%M")
    return {
        "id": key.id,
        "name": key.name,
        "masked": key.masked,
        "models": list(key.models),
        "extra_patterns": [m for m in key.models if m != "*" and m not in model_names],
        "enabled": key.enabled,
        "expired": key.expires_at is not None and key.expires_at <= now,
        "active": key.enabled and (key.expires_at is None or key.expires_at > now),
        "expires_at": key.expires_at,
        "expires_local": expires_local,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "max_concurrency": key.max_concurrency,
        "notes": key.notes,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "request_count": key.request_count,
        "usage": None,
    }


async def _usage_summary(app: AppState, key_id: str) -> Any:
    """The usage engineer's per-key 7-day summary, or None when it is unavailable."""
    try:
        return await key_usage_summary(app, key_id)
    except Exception:  # usage figures are decoration here; the key list must still render
        log.exception("key usage summary failed for key %s", key_id)
        return None


async def keys_page(request: web.Request) -> web.StreamResponse:
    """GET /admin/keys."""
    app = request.config_dict
    found, _error = await list_models(app)
    model_names = sorted(m.name for m in found)
    # The ready-made snippets need a model that can chat; embedding models cannot.
    chat_models = [
        m.name
        for m in sorted(found, key=lambda m: m.name)
        if "embedding" not in (m.capabilities or [])
    ]
    snippet_model = (chat_models or model_names or ["llama3.2"])[0]
    now = time.time()
    keys = sorted(app[REGISTRY].keys.values(), key=lambda k: k.created_at, reverse=True)
    rows = [key_row(k, model_names, now) for k in keys]
    summaries = await asyncio.gather(*(_usage_summary(app, row["id"]) for row in rows))
    for row, summary in zip(rows, summaries, strict=True):
        row["usage"] = summary
    has_usage = any(summary is not None for summary in summaries)
    return aiohttp_jinja2.render_template(
        "keys.html",
        request,
        {
            "keys": rows,
            "model_names": model_names,
            "base_url": base_url(request),
            "has_key_usage": has_usage,
            "snippet_model": snippet_model,
        },
    )
