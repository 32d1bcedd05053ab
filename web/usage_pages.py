"""The admin Usage page (charts, filters, request table) and the per-key usage fragment."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from appkeys import REGISTRY, USAGE, AppState
from state import usage_query
from state.usage import UsageUnavailable
from state.usage_query import RANGES, STATUS_CLASSES, FilterError, UsageFilter
from web import charts

log = logging.getLogger(__name__)

PER_PAGE = 50
TOP = 10
RANGE_LABELS = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "all": "Everything kept",
}
STATUS_LABELS = {
    "ok": "Successful (< 400)",
    "error": "Errors (>= 400)",
    "4xx": "4xx",
    "5xx": "5xx",
    "cancelled": "Cancelled by client",
}


def page_charts(agg: dict[str, Any], key_names: dict[str, str]) -> list[dict[str, Any]]:
    """The page's charts as {title, svg} from the aggregates."""
    series = agg["series"]
    times = [p["t"] for p in series]
    step = agg["bucket_seconds"]
    per = "hour" if step == 3600 else "day"

    def line(title: str, unit: str, *cols: tuple[str, str]) -> dict[str, Any]:
        data = [(name, [p[field] for p in series]) for name, field in cols]
        return {
            "title": title,
            "svg": Markup(charts.line_chart(times, data, title=title, unit=unit, step=step)),
        }

    rates = [100 * p["error_rate"] if p["requests"] else None for p in series]
    top_keys = [(_key_label(k, key_names), k["requests"]) for k in agg["keys"][:TOP]]
    top_models = [(m["model"] or "(none)", m["requests"]) for m in agg["models"][:TOP]]
    return [
        line(f"Requests per {per}", "", ("requests", "requests"), ("errors", "errors")),
        line(
            f"Tokens per {per}",
            "",
            ("prompt", "prompt_tokens"),
            ("completion", "completion_tokens"),
        ),
        line(
            "Latency and time to first token",
            "ms",
            ("p50", "latency_p50_ms"),
            ("p95", "latency_p95_ms"),
            ("TTFT p50", "ttft_p50_ms"),
            ("TTFT p95", "ttft_p95_ms"),
        ),
        {
            "title": "Error rate",
            "svg": Markup(
                charts.line_chart(
                    times, [("errors %", rates)], title="Error rate", unit="%", step=step
                )
            ),
        },
        {
            "title": "Top keys (requests)",
            "svg": Markup(charts.hbar_chart(top_keys, title="Top keys by requests")),
        },
        {
            "title": "Top models (requests)",
            "svg": Markup(charts.hbar_chart(top_models, title="Top models by requests")),
        },
    ]


def _key_label(item: dict[str, Any], key_names: dict[str, str]) -> str:
    """A key's display name: current name, else the recorded one, else its id."""
    key_id = item.get("key_id")
    if not key_id:
        return "(no key)"
    return key_names.get(key_id) or item.get("key_name") or key_id


def page_link(f: UsageFilter, page: int) -> str:
    """The Usage page URL for a filter and page number."""
    query = f.query()
    if page > 1:
        query["page"] = str(page)
    return "/admin/usage" + ("?" + urlencode(query) if query else "")


async def usage_page(request: web.Request) -> web.StreamResponse:
    """GET /admin/usage: charts, totals, filters and one page of the request table."""
    app = request.config_dict
    now = time.time()
    key_names = {k.id: k.name for k in app[REGISTRY].keys.values()}
    ctx: dict[str, Any] = {
        "ranges": RANGE_LABELS,
        "statuses": STATUS_LABELS,
        "error": None,
        "error_field": None,
        "form": dict(request.query),
        "usage_error": None,
        "charts": [],
        "rows": [],
        "totals": None,
        "key_options": sorted(key_names.items(), key=lambda kv: kv[1].lower()),
        "model_options": [],
        "no_key": usage_query.NO_KEY,
    }
    try:
        f = usage_query.parse_filter(request.query, now, "7d")
        page, _ = usage_query.parse_page(request.query)
    except FilterError as exc:
        ctx.update(error=exc.message, error_field=exc.field)
        return aiohttp_jinja2.render_template("usage.html", request, ctx, status=400)
    if f.range is None and f.since is None and f.until is None:
        f = UsageFilter(key_id=f.key_id, model=f.model, status=f.status, range="all")
    ctx["form"] = {**f.query(), "range": f.range or ""}
    recorder = app[USAGE]
    try:
        agg, table = await asyncio.gather(
            recorder.read(usage_query.aggregates, f, now),
            recorder.read(usage_query.rows, f, page, PER_PAGE),
        )
    except UsageUnavailable as exc:
        ctx["usage_error"] = str(exc)
        return aiohttp_jinja2.render_template("usage.html", request, ctx, status=503)
    seen = {k["key_id"]: _key_label(k, key_names) for k in agg["keys"] if k["key_id"]}
    ctx["key_options"] = sorted({**seen, **key_names}.items(), key=lambda kv: kv[1].lower())
    ctx["model_options"] = sorted(
        {m["model"] for m in agg["models"] if m["model"]} | ({f.model} if f.model else set())
    )
    ctx.update(
        charts=page_charts(agg, key_names),
        totals=agg["totals"],
        agg=agg,
        rows=table["data"],
        page=page,
        has_more=table["has_more"],
        prev_url=page_link(f, page - 1) if page > 1 else None,
        next_url=page_link(f, page + 1) if table["has_more"] else None,
        csv_url="/admin/api/usage.csv" + ("?" + urlencode(f.query()) if f.query() else ""),
        key_names=key_names,
        status_classes=STATUS_CLASSES,
        all_ranges=RANGES,
    )
    return aiohttp_jinja2.render_template("usage.html", request, ctx)


async def key_usage_summary(app: AppState, key_id: str) -> dict[str, Any] | None:
    """One key's last 7 days for the keys page: totals, daily series, a small SVG, a link.

    Returns None when the usage database is unavailable. Render with
    `{% set usage = summary %}{% include "_key_usage.html" %}`.
    """
    try:
        summary = await app[USAGE].read(usage_query.key_summary, key_id, time.time())
    except UsageUnavailable:
        return None
    values = [p["requests"] for p in summary["series"]]
    summary["svg"] = Markup(
        charts.sparkline(
            values, title=f"Requests per day, last 7 days: {', '.join(map(str, values))}"
        )
    )
    summary["url"] = "/admin/usage?" + urlencode({"key": key_id, "range": "7d"})
    return summary
