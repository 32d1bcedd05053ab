"""Reading the usage database: filter parsing, aggregates from the hourly rollups, request rows.

Filter parsing is pure; the query functions are synchronous and take a connection (the recorder
runs them in a thread via `UsageRecorder.read`).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from state.usage_db import HIST_BUCKETS, HIST_EDGES_MS, LAT_COLS, TTFT_COLS

RANGES: dict[str, int | None] = {
    "1h": 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "90d": 90 * 86400,
    "all": None,
}
STATUS_CLASSES = ("ok", "error", "4xx", "5xx", "cancelled")
NO_KEY = "none"  # the key filter value for requests refused before a key was known
MAX_PER_PAGE = 500
HOURLY_MAX_SPAN = 3 * 86400  # longer ranges are charted per day
MAX_FUTURE = 366 * 86400  # since/until may be at most this far ahead of now
MAX_BUCKETS = 400  # a chart never has more points: wider ranges use several days per point


class FilterError(ValueError):
    """A bad filter parameter: names the field and says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which requests to look at. `None` means no restriction."""

    since: float | None = None
    until: float | None = None
    key_id: str | None = None
    model: str | None = None
    status: str | None = None
    range: str | None = None

    def query(self) -> dict[str, str]:
        """The filter as URL query parameters (for links that keep it)."""
        out: dict[str, str] = {}
        if self.range:
            out["range"] = self.range
        else:
            if self.since is not None:
                out["since"] = iso(self.since)
            if self.until is not None:
                out["until"] = iso(self.until)
        for name in ("key_id", "model", "status"):
            value = getattr(self, name)
            if value:
                out["key" if name == "key_id" else name] = value
        return out


def iso(ts: float) -> str:
    """A UTC timestamp as ISO 8601 with seconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(field: str, raw: str, now: float) -> float:
    """Epoch seconds, an ISO date or an ISO date-time (naive means UTC) to epoch seconds.

    Bounded to 1970 .. one year from now: later times cannot be formatted or charted sanely.
    """
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise FilterError(
                field,
                f"`{field}` must be an ISO 8601 date or time (e.g. "
                f"2026-11-01 or 2026-11-01T10:00:00Z) or epoch seconds; "
                f"got {raw!r}.",
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        value = parsed.timestamp()
    if not (math.isfinite(value) and 0 <= value <= now + MAX_FUTURE):
        raise FilterError(
            field, f"`{field}` must be between 1970-01-01 and one year from now; got {raw!r}."
        )
    return value


def parse_filter(
    query: Mapping[str, str], now: float, default_range: str | None = None
) -> UsageFilter:
    """Parse key/model/status/range/since/until query parameters into a UsageFilter."""
    key = (query.get("key") or "").strip() or None
    model = (query.get("model") or "").strip() or None
    status = (query.get("status") or "").strip().lower() or None
    if (
        status is not None
        and status not in STATUS_CLASSES
        and not (len(status) == 3 and status.isdigit() and 100 <= int(status) <= 599)
    ):
        raise FilterError(
            "status",
            f"`status` must be an HTTP status code (e.g. 429) or one "
            f"of {', '.join(STATUS_CLASSES)}; got {status!r}.",
        )
    since_raw = (query.get("since") or "").strip()
    until_raw = (query.get("until") or "").strip()
    rng = (query.get("range") or "").strip() or None
    if rng is not None and rng not in RANGES:
        raise FilterError("range", f"`range` must be one of {', '.join(RANGES)}; got {rng!r}.")
    since = parse_time("since", since_raw, now) if since_raw else None
    until = parse_time("until", until_raw, now) if until_raw else None
    if since is None and until is None:
        rng = rng or default_range
        span = RANGES.get(rng) if rng else None
        if span is not None:
            since = now - span
    else:
        rng = None
    if since is not None and until is not None and until <= since:
        raise FilterError("until", "`until` must be later than `since`.")
    return UsageFilter(since, until, key, model, status, rng)


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """The `page` (from 1) and `per_page` (1..500, default 50) parameters."""
    out = []
    for name, default, top in (("page", 1, 1_000_000), ("per_page", 50, MAX_PER_PAGE)):
        raw = (query.get(name) or "").strip()
        if not raw:
            out.append(default)
            continue
        try:
            value = int(raw)
        except ValueError:
            raise FilterError(name, f"`{name}` must be a whole number; got {raw!r}.") from None
        if not 1 <= value <= top:
            raise FilterError(name, f"`{name}` must be between 1 and {top}; got {value}.")
        out.append(value)
    return out[0], out[1]


# -- percentiles ------------------------------------------------------------------------------
def percentile(hist: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) in ms of a bucketed histogram, interpolated within its bucket."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            lo = HIST_EDGES_MS[i - 1] if i > 0 else 0.0
            hi = HIST_EDGES_MS[i] if i < len(HIST_EDGES_MS) else lo * 1.35
            frac = (rank - seen) / count
            if lo <= 0:
                return hi * frac
            return float(lo * (hi / lo) ** frac)  # geometric buckets: interpolate that way
        seen += count
    return HIST_EDGES_MS[-1]  # pragma: no cover - unreachable: rank <= total


# -- aggregates -------------------------------------------------------------------------------
_AGG = (
    "SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), "
    "SUM(completion_tokens), SUM(reasoning_tokens), SUM(latency_ms_sum), SUM(ttft_count), "
    "SUM(ttft_ms_sum), " + ", ".join(f"SUM({c})" for c in LAT_COLS + TTFT_COLS)
)


def _rollup_where(f: UsageFilter, unit: str = "hour", period: int = 3600) -> tuple[str, list[Any]]:
    """WHERE clause on a rollup table (whole hours or days; status does not apply)."""
    clauses: list[str] = ["1"]
    args: list[Any] = []
    if f.since is not None:
        clauses.append(f"{unit} >= ?")
        args.append(int(f.since // period))
    if f.until is not None:
        clauses.append(f"{unit} < ?")
        args.append(math.ceil(f.until / period))
    if f.key_id is not None:
        clauses.append("key_id = ?")
        args.append("" if f.key_id == NO_KEY else f.key_id)
    if f.model is not None:
        clauses.append("model = ?")
        args.append(f.model)
    return " AND ".join(clauses), args


def _stats(row: Sequence[Any]) -> dict[str, Any]:
    """One aggregate row (in _AGG order) as named totals with percentiles."""
    n = HIST_BUCKETS
    vals = [v or 0 for v in row]
    requests, errors, cancelled, prompt, completion, reasoning, lat_sum, ttft_n, ttft_sum = vals[:9]
    lat, ttft = vals[9 : 9 + n], vals[9 + n : 9 + 2 * n]
    return {
        "requests": requests,
        "errors": errors,
        "cancelled": cancelled,
        "error_rate": errors / requests if requests else 0.0,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": reasoning,
        "total_tokens": prompt + completion,
        "latency_avg_ms": lat_sum / requests if requests else None,
        "latency_p50_ms": _r(percentile(lat, 0.5)),
        "latency_p95_ms": _r(percentile(lat, 0.95)),
        "ttft_avg_ms": ttft_sum / ttft_n if ttft_n else None,
        "ttft_p50_ms": _r(percentile(ttft, 0.5)),
        "ttft_p95_ms": _r(percentile(ttft, 0.95)),
    }


def _r(value: float | None) -> float | None:
    """Round a millisecond value for output."""
    return None if value is None else round(value, 1)


def chart_bucket(f: UsageFilter, now: float, first_day: int | None) -> tuple[float, float, int]:
    """(start, end, bucket seconds) of the chart for a filter: hourly up to 3 days, else daily.

    Charts and totals count whole rollup cells: whole hours, or whole UTC days for daily
    charts (so "7d" covers the last 7 days plus today), which keeps them fast at 1M rows.
    Ranges longer than MAX_BUCKETS days get several days per point, so a `since` of 1970 is
    still a chart of bounded size.
    """
    end = f.until if f.until is not None else now
    start = (
        f.since
        if f.since is not None
        else (first_day * 86400 if first_day is not None else end - 86400)
    )
    step = 3600 if end - start <= HOURLY_MAX_SPAN else 86400
    days = math.ceil(end / 86400) - int(start // 86400)
    if step == 86400 and days > MAX_BUCKETS:
        step = 86400 * math.ceil(days / MAX_BUCKETS)
    return start - start % step, math.ceil(end / step) * step, step


def aggregates(conn: sqlite3.Connection, f: UsageFilter, now: float) -> dict[str, Any]:
    """Totals, a dense time series, and per-key / per-model totals for a filter."""
    first_day = None
    if f.since is None:
        where, args = _rollup_where(f, "day", 86400)
        first_day = conn.execute(f"SELECT MIN(day) FROM rollup_day WHERE {where}", args).fetchone()[
            0
        ]
    start, end, step = chart_bucket(f, now, first_day)
    table, unit, period = (
        ("rollup_hour", "hour", 3600) if step == 3600 else ("rollup_day", "day", 86400)
    )
    where, args = _rollup_where(UsageFilter(start, end, f.key_id, f.model), unit, period)
    rows = conn.execute(
        f"SELECT {unit} / {step // period} AS b, {_AGG} FROM {table} "
        f"WHERE {where} GROUP BY b ORDER BY b",
        args,
    ).fetchall()
    by_bucket = {int(r[0]): r[1:] for r in rows}
    zero = (0,) * (9 + 2 * HIST_BUCKETS)
    series = []
    for b in range(int(start // step), int(end // step)):
        point = _stats(by_bucket.get(b, zero))
        point["t"] = b * step
        point["time"] = iso(b * step)
        series.append(point)
    total_row = (
        [sum(col) for col in zip(zero, *by_bucket.values(), strict=False)] if by_bucket else zero
    )
    keys = conn.execute(
        f"SELECT key_id, MAX(key_name), SUM(requests), SUM(prompt_tokens), "
        f"SUM(completion_tokens), SUM(errors) FROM {table} WHERE {where} GROUP BY key_id "
        "ORDER BY SUM(requests) DESC, key_id",
        args,
    ).fetchall()
    models = conn.execute(
        f"SELECT model, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), "
        f"SUM(errors) FROM {table} WHERE {where} GROUP BY model "
        "ORDER BY SUM(requests) DESC, model",
        args,
    ).fetchall()
    return {
        "since": iso(start),
        "until": iso(end if f.until is not None else min(end, now)),
        "bucket_seconds": step,
        "totals": _stats(total_row),
        "series": series,
        "keys": [
            {
                "key_id": k or None,
                "key_name": name,
                "requests": n,
                "prompt_tokens": p,
                "completion_tokens": c,
                "total_tokens": p + c,
                "errors": e,
            }
            for k, name, n, p, c, e in keys
        ],
        "models": [
            {
                "model": m or None,
                "requests": n,
                "prompt_tokens": p,
                "completion_tokens": c,
                "total_tokens": p + c,
                "errors": e,
            }
            for m, n, p, c, e in models
        ],
    }


# -- rows -------------------------------------------------------------------------------------
ROW_FIELDS = (
    "id",
    "ts",
    "key_id",
    "key_name",
    "endpoint",
    "model",
    "ollama_model",
    "stream",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "latency_ms",
    "ttft_ms",
    "load_ms",
    "tokens_per_s",
    "client_ip",
    "user_agent",
    "cancelled",
    "request_id",
    "prompt_text",
    "response_text",
)
_ROW_SELECT = (
    "SELECT r.id, r.ts, r.key_id, r.key_name, r.endpoint, r.model, r.ollama_model, "
    "r.stream, r.status, r.error_code, r.prompt_tokens, r.completion_tokens, "
    "r.reasoning_tokens, r.latency_ms, r.ttft_ms, r.load_ms, r.tokens_per_s, "
    "r.client_ip, r.user_agent, r.cancelled, r.request_id, c.prompt, c.response "
    "FROM requests r LEFT JOIN content c ON c.request_id = r.id"
)


def _row_where(f: UsageFilter) -> tuple[str, list[Any]]:
    """WHERE clause on requests for a filter."""
    clauses: list[str] = ["1"]
    args: list[Any] = []
    if f.since is not None:
        clauses.append("r.ts >= ?")
        args.append(f.since)
    if f.until is not None:
        clauses.append("r.ts < ?")
        args.append(f.until)
    if f.key_id == NO_KEY:
        clauses.append("r.key_id IS NULL")
    elif f.key_id is not None:
        clauses.append("r.key_id = ?")
        args.append(f.key_id)
    if f.model is not None:
        clauses.append("r.rollup_model = ?")
        args.append(f.model)
    status = f.status
    if status == "ok":
        clauses.append("r.status < 400")
    elif status == "error":
        clauses.append("r.status >= 400")
    elif status in ("4xx", "5xx"):
        base = int(status[0]) * 100
        clauses.append(f"r.status >= {base} AND r.status < {base + 100}")
    elif status == "cancelled":
        clauses.append("r.cancelled = 1")
    elif status is not None:
        clauses.append("r.status = ?")
        args.append(int(status))
    return " AND ".join(clauses), args


def _as_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A requests row as the API's dict."""
    out = dict(zip(ROW_FIELDS, row, strict=True))
    out["time"] = iso(out["ts"])
    out["stream"] = bool(out["stream"])
    out["cancelled"] = bool(out["cancelled"])
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    for name in ("latency_ms", "ttft_ms", "load_ms", "tokens_per_s"):
        if out[name] is not None:
            out[name] = round(out[name], 1)
    return out


def rows(conn: sqlite3.Connection, f: UsageFilter, page: int, per_page: int) -> dict[str, Any]:
    """One page of request rows, newest first, with `has_more`."""
    where, args = _row_where(f)
    found = conn.execute(
        f"{_ROW_SELECT} WHERE {where} ORDER BY r.ts DESC, r.id DESC LIMIT ? OFFSET ?",
        [*args, per_page + 1, (page - 1) * per_page],
    ).fetchall()
    return {
        "data": [_as_dict(r) for r in found[:per_page]],
        "page": page,
        "per_page": per_page,
        "has_more": len(found) > per_page,
    }


def rows_after(
    conn: sqlite3.Connection, f: UsageFilter, cursor: tuple[float, int] | None, limit: int
) -> list[dict[str, Any]]:
    """Rows older than cursor (ts, id), newest first: keyset paging for the CSV export."""
    where, args = _row_where(f)
    if cursor is not None:
        where += " AND (r.ts < ? OR (r.ts = ? AND r.id < ?))"
        args += [cursor[0], cursor[0], cursor[1]]
    found = conn.execute(
        f"{_ROW_SELECT} WHERE {where} ORDER BY r.ts DESC, r.id DESC LIMIT ?", [*args, limit]
    ).fetchall()
    return [_as_dict(r) for r in found]


def key_summary(conn: sqlite3.Connection, key_id: str, now: float, days: int = 7) -> dict[str, Any]:
    """One key's totals and daily series over the last `days` days (from rollups)."""
    since = (int(now // 86400) - days + 1) * 86400
    f = UsageFilter(since=since, until=now, key_id=key_id)
    where, args = _rollup_where(f, "day", 86400)
    found = conn.execute(
        f"SELECT day, SUM(requests), SUM(prompt_tokens), "
        f"SUM(completion_tokens), SUM(errors) FROM rollup_day WHERE {where} "
        "GROUP BY day",
        args,
    ).fetchall()
    by_day = {int(d): (n, p, c, e) for d, n, p, c, e in found}
    series = []
    for day in range(int(since // 86400), int(since // 86400) + days):
        n, p, c, e = by_day.get(day, (0, 0, 0, 0))
        series.append(
            {
                "t": day * 86400,
                "date": iso(day * 86400)[:10],
                "requests": n,
                "prompt_tokens": p,
                "completion_tokens": c,
                "errors": e,
            }
        )
    last = conn.execute("SELECT MAX(ts) FROM requests WHERE key_id = ?", (key_id,)).fetchone()[0]
    return {
        "key_id": key_id,
        "days": days,
        "series": series,
        "requests": sum(s["requests"] for s in series),
        "prompt_tokens": sum(s["prompt_tokens"] for s in series),
        "completion_tokens": sum(s["completion_tokens"] for s in series),
        "total_tokens": sum(s["prompt_tokens"] + s["completion_tokens"] for s in series),
        "errors": sum(s["errors"] for s in series),
        "last_request": iso(last) if last is not None else None,
    }
