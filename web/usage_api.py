"""Admin usage API: GET /admin/api/usage (aggregates), /admin/api/requests (rows), usage.csv."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from appkeys import REGISTRY, USAGE, AppState
from state import usage_query
from state.usage import UsageUnavailable
from state.usage_query import FilterError, UsageFilter, parse_filter, parse_page
from web.jsonapi import AdminError
from web.usage_pages import key_usage_summary, usage_page

__all__ = ["key_usage_summary", "setup_usage_api"]
log = logging.getLogger(__name__)

CSV_FIELDS = (
    "time",
    "request_id",
    "key_id",
    "key_name",
    "endpoint",
    "model",
    "ollama_model",
    "stream",
    "status",
    "error_code",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
    "latency_ms",
    "ttft_ms",
    "load_ms",
    "tokens_per_s",
    "client_ip",
    "user_agent",
    "prompt_text",
    "response_text",
)
CSV_BATCH = 2000
# A cell starting with one of these runs as a formula in spreadsheets (CSV injection); key
# names, user agents and texts are typed by others, so such cells get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def request_filter(query: Mapping[str, str], default_range: str | None) -> UsageFilter:
    """The filter from a request's query, or a 400 naming the bad field."""
    try:
        return parse_filter(query, time.time(), default_range)
    except FilterError as exc:
        raise AdminError(400, exc.message, exc.field) from None


def unavailable(exc: Exception) -> AdminError:
    """The 503 for a usage database that cannot be read."""
    return AdminError(503, f"Usage data is unavailable: {exc}")


def current_key_names(app: AppState, items: list[dict[str, Any]]) -> None:
    """Show each key under its current name (keys can be renamed); deleted keys keep theirs."""
    keys = app[REGISTRY].keys
    for item in items:
        key = keys.get(item.get("key_id") or "")
        if key is not None:
            item["key_name"] = key.name


async def usage_json(request: web.Request) -> web.Response:
    """GET /admin/api/usage: totals, a time series, per-key and per-model totals."""
    f = request_filter(request.query, "7d")
    try:
        data = await request.config_dict[USAGE].read(usage_query.aggregates, f, time.time())
    except UsageUnavailable as exc:
        raise unavailable(exc) from None
    current_key_names(request.config_dict, data["keys"])
    data["filter"] = f.query()
    return web.json_response(data)


async def requests_json(request: web.Request) -> web.Response:
    """GET /admin/api/requests: request rows, newest first, filtered and paginated."""
    f = request_filter(request.query, None)
    try:
        page, per_page = parse_page(request.query)
    except FilterError as exc:
        raise AdminError(400, exc.message, exc.field) from None
    try:
        data = await request.config_dict[USAGE].read(usage_query.rows, f, page, per_page)
    except UsageUnavailable as exc:
        raise unavailable(exc) from None
    data["filter"] = f.query()
    return web.json_response(data)


def csv_cell(value: Any) -> Any:
    """A value made safe for spreadsheets."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def csv_text(rows: list[dict[str, Any]], header: bool) -> str:
    """Rows (and the header line first, if asked) as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_FIELDS)
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in CSV_FIELDS])
    return out.getvalue()


async def usage_csv(request: web.Request) -> web.StreamResponse:
    """GET /admin/api/usage.csv: every row matching the filter, streamed in batches."""
    f = request_filter(request.query, None)
    recorder = request.config_dict[USAGE]
    try:  # read the first batch before sending headers, so a failure is still a clean 503
        batch = await recorder.read(usage_query.rows_after, f, None, CSV_BATCH)
    except UsageUnavailable as exc:
        raise unavailable(exc) from None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="usage-{stamp}.csv"',
        }
    )
    await response.prepare(request)
    await response.write(csv_text(batch, header=True).encode("utf-8"))
    try:
        while len(batch) == CSV_BATCH:
            cursor = (batch[-1]["ts"], batch[-1]["id"])
            batch = await recorder.read(usage_query.rows_after, f, cursor, CSV_BATCH)
            await response.write(csv_text(batch, header=False).encode("utf-8"))
    except (UsageUnavailable, sqlite3.Error) as exc:
        # Headers are sent: cut the connection so the download fails visibly instead of
        # ending like a complete file.
        log.error("usage CSV export failed mid-way: %s", exc)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def setup_usage_api(app: web.Application) -> None:
    """Register the usage API routes and the usage page."""
    app.router.add_get("/api/usage", usage_json)
    app.router.add_get("/api/requests", requests_json)
    app.router.add_get("/api/usage.csv", usage_csv)
    app.router.add_get("/usage", usage_page)
