"""The admin dashboard: Ollama status, loaded models, today's and this week's usage."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from api.core.errors import APIError
from appkeys import REGISTRY, UPSTREAM, USAGE, AppState
from state import usage_query
from state.usage import UsageUnavailable
from web import charts
from web.pages_models import list_models
from web.pages_util import fmt_num

log = logging.getLogger(__name__)

# The dashboard must render even when Ollama hangs: each probe gets this long.
PROBE_SECONDS = 3.0


def base_url(request: web.Request) -> str:
    """The /v1 base URL clients should use, as this browser reached the gateway."""
    scheme, host = request.scheme, request.host
    if request.config_dict[REGISTRY].setting("trust_proxy"):
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
    return f"{scheme}://{host}/v1"


async def _probe(app: AppState, path: str) -> dict[str, Any]:
    """GET an Ollama endpoint with a short deadline; raises APIError in plain words."""
    return await app[UPSTREAM].request_json("GET", path, total=PROBE_SECONDS)


def loaded_rows(ps: dict[str, Any]) -> list[dict[str, Any]]:
    """The /api/ps models as table rows (context length, memory, share on the GPU)."""
    rows = []
    for m in ps.get("models") or []:
        if not isinstance(m, dict):
            continue
        raw_details = m.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        size = m.get("size") or 0
        vram = m.get("size_vram") or 0
        share = "–" if not size else f"{round(100 * vram / size)}%"
        expires = str(m.get("expires_at") or "")
        rows.append(
            {
                "name": m.get("name") or m.get("model") or "?",
                "context_length": m.get("context_length"),
                "size": size or None,
                "gpu_share": share,
                "expires_at": expires[:19].replace("T", " ") or None,
                "parameter_size": details.get("parameter_size"),
                "quantization": details.get("quantization_level"),
            }
        )
    return rows


async def _usage(app: AppState, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(today's totals, last 7 days' aggregates with a daily series)."""
    day_start = now - now % 86400
    today = usage_query.UsageFilter(since=day_start, until=now)
    week = usage_query.UsageFilter(since=now - 7 * 86400, until=now, range="7d")
    t = await app[USAGE].read(usage_query.aggregates, today, now)
    w = await app[USAGE].read(usage_query.aggregates, week, now)
    return t["totals"], w


def _charts(week: dict[str, Any]) -> list[dict[str, Any]]:
    """Small SVG charts of the week, drawn by web/charts.py when it is available."""
    series = week.get("series") or []
    out = []
    for title, field in (
        ("Requests, last 7 days", "requests"),
        ("Tokens, last 7 days", "total_tokens"),
    ):
        try:
            svg = charts.bar_chart(
                [(p["t"], p.get(field) or 0) for p in series],
                title=title,
                step=week.get("bucket_seconds") or 86400,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            log.debug("dashboard chart unavailable: %s", exc)
            return []
        out.append({"title": title, "svg": Markup(svg)})
    return out


async def dashboard(request: web.Request) -> web.StreamResponse:
    """GET /admin: status, loaded models, usage today and this week."""
    app = request.config_dict
    registry = app[REGISTRY]
    url = registry.setting("ollama_url")
    version: dict[str, Any] | BaseException
    ps: dict[str, Any] | BaseException
    version, ps = await asyncio.gather(
        _probe(app, "/api/version"), _probe(app, "/api/ps"), return_exceptions=True
    )
    if isinstance(version, APIError):
        ollama = {"ok": False, "error": version.message, "url": url}
    elif isinstance(version, BaseException):
        raise version
    else:
        ollama = {"ok": True, "version": version.get("version", "?"), "url": url}
    loaded = loaded_rows(ps) if isinstance(ps, dict) else []

    now = time.time()
    stats: list[dict[str, str]] = []
    charts: list[dict[str, Any]] = []
    usage_error = None
    try:
        today, week = await _usage(app, now)
        totals = week["totals"]
        stats = [
            {
                "label": "Requests today",
                "value": fmt_num(today["requests"]),
                "sub": f"{fmt_num(totals['requests'])} in 7 days",
            },
            {
                "label": "Tokens today",
                "value": fmt_num(today["total_tokens"]),
                "sub": f"{fmt_num(totals['total_tokens'])} in 7 days",
            },
            {
                "label": "Errors today",
                "value": fmt_num(today["errors"]),
                "sub": f"{fmt_num(totals['errors'])} in 7 days",
            },
        ]
        charts = _charts(week)
    except (UsageUnavailable, sqlite3.Error) as exc:
        usage_error = str(exc)

    found, _error = await list_models(app)
    models = [m.name for m in found]
    keys = list(registry.keys.values())
    counts = {
        "model_total": len(models),
        "model_enabled": sum(1 for m in models if registry.model_settings(m).enabled),
        "key_total": len(keys),
        "key_active": sum(
            1 for k in keys if k.enabled and (k.expires_at is None or k.expires_at > now)
        ),
    }
    ctx = {
        "ollama": ollama,
        "loaded": loaded,
        "stats": stats,
        "charts": charts,
        "usage_error": usage_error,
        "counts": counts,
        "base_url": base_url(request),
    }
    return aiohttp_jinja2.render_template("dashboard.html", request, ctx)
