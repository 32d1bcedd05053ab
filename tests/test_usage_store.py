"""The usage store: migrations, batched inserts and rollups, queries, pruning, the recorder."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from state import usage_db, usage_query
from state.usage import LogThrottle, RequestRecord, UsageRecorder
from state.usage_query import FilterError, UsageFilter, parse_filter, parse_page, percentile

NOW = 1_790_000_000.0  # a fixed "now" (2026-09-21) so time buckets are deterministic


def rec(**kw: Any) -> RequestRecord:
    """A record with sensible defaults for tests."""
    base: dict[str, Any] = {
        "ts": NOW - 60,
        "key_id": "k1",
        "key_name": "alice",
        "endpoint": "/v1/chat/completions",
        "model": "llama3",
        "ollama_model": "llama3:latest",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "latency_ms": 200.0,
    }
    base.update(kw)
    return RequestRecord(**base)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    """A freshly migrated database."""
    c = usage_db.open_db(tmp_path / "usage.db")
    yield c
    c.close()


def count(c: sqlite3.Connection, table: str = "requests") -> int:
    """Rows in a table."""
    return c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- schema -----------------------------------------------------------------------------------
def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    c = usage_db.open_db(path)
    assert c.execute("PRAGMA user_version").fetchone()[0] == usage_db.SCHEMA_VERSION
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    usage_db.insert_batch(c, [rec()], False)
    c.close()
    c = usage_db.open_db(path)  # reopening runs no migration again and keeps the data
    assert count(c) == 1
    c.execute(f"PRAGMA user_version = {usage_db.SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer than this gateway"):
        usage_db.open_db(path)


def test_migration_2_backfills_daily_rollups(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    c = usage_db.open_db(path)
    usage_db.insert_batch(c, [rec(ts=NOW - 5000 * i, key_id=f"k{i % 2}") for i in range(60)], False)
    before = c.execute("SELECT * FROM rollup_day ORDER BY day, key_id, model").fetchall()
    c.execute("DROP TABLE rollup_day")  # back to what schema version 1 had
    c.execute("PRAGMA user_version = 1")
    c.close()
    c = usage_db.open_db(path)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2
    assert c.execute("SELECT * FROM rollup_day ORDER BY day, key_id, model").fetchall() == before
    assert len(before) > 2
    c.close()


# -- inserts and rollups ----------------------------------------------------------------------
def test_rollups_match_raw_rows(conn: sqlite3.Connection) -> None:
    recs = [
        rec(
            ts=NOW - i * 700,
            key_id=f"k{i % 3}",
            key_name=f"name{i % 3}",
            ollama_model=f"m{i % 2}:latest",
            status=200 if i % 4 else 500,
            prompt_tokens=i,
            completion_tokens=2 * i,
            reasoning_tokens=i % 2,
            latency_ms=10.0 * i,
            ttft_ms=None if i % 5 == 0 else float(i),
            cancelled=i % 7 == 0,
        )
        for i in range(300)
    ]
    usage_db.insert_batch(conn, recs[:150], False)
    usage_db.insert_batch(conn, recs[150:], False)  # second batch updates existing cells
    raw = conn.execute(
        "SELECT COUNT(*), SUM(status >= 400), SUM(cancelled), SUM(prompt_tokens),"
        " SUM(completion_tokens), SUM(reasoning_tokens) FROM requests"
    ).fetchone()
    rolled = conn.execute(
        "SELECT SUM(requests), SUM(errors), SUM(cancelled), "
        "SUM(prompt_tokens), SUM(completion_tokens), SUM(reasoning_tokens) "
        "FROM rollup_hour"
    ).fetchone()
    assert raw == rolled == (300, 75, 43, sum(range(300)), 2 * sum(range(300)), 150)
    hist = conn.execute(
        f"SELECT {'+'.join(usage_db.LAT_COLS)}, {'+'.join(usage_db.TTFT_COLS)} FROM rollup_hour"
    ).fetchall()
    assert sum(h[0] for h in hist) == 300 and sum(h[1] for h in hist) == 240
    per_cell = conn.execute("SELECT hour, key_id, model, requests FROM rollup_hour").fetchall()
    expected: dict[tuple[int, str, str], int] = {}
    for r in recs:
        cell = (int(r.ts // 3600), r.key_id, r.ollama_model)
        expected[cell] = expected.get(cell, 0) + 1
    assert {(h, k, m): n for h, k, m, n in per_cell} == expected
    cols = ", ".join(
        f"SUM({c})"
        for c in ("requests", "errors", "prompt_tokens", "latency_ms_sum", "ttft_count", "lat_h10")
    )
    by_day = conn.execute(f"SELECT {cols} FROM rollup_day").fetchone()
    assert by_day == conn.execute(f"SELECT {cols} FROM rollup_hour").fetchone()
    days = conn.execute("SELECT day, SUM(requests) FROM rollup_day GROUP BY day").fetchall()
    assert dict(days) == {
        d: sum(1 for r in recs if int(r.ts // 86400) == d)
        for d in {int(r.ts // 86400) for r in recs}
    }


def test_refusal_without_key_or_model_is_stored(conn: sqlite3.Connection) -> None:
    usage_db.insert_batch(
        conn,
        [
            rec(
                key_id=None,
                key_name=None,
                model=None,
                ollama_model=None,
                status=401,
                error_code="invalid_api_key",
                prompt_tokens=0,
                completion_tokens=0,
            )
        ],
        False,
    )
    got = usage_query.rows(conn, UsageFilter(key_id="none"), 1, 10)["data"]
    assert [(r["status"], r["error_code"], r["key_id"]) for r in got] == [
        (401, "invalid_api_key", None)
    ]
    assert conn.execute("SELECT key_id, model, errors FROM rollup_hour").fetchall() == [("", "", 1)]


def test_content_only_with_content_logging(conn: sqlite3.Connection) -> None:
    texts = {"prompt_text": "secret prompt", "response_text": "the answer"}
    usage_db.insert_batch(conn, [rec(request_id="off", **texts)], False)
    usage_db.insert_batch(conn, [rec(request_id="on", **texts), rec(request_id="plain")], True)
    got = {
        r["request_id"]: (r["prompt_text"], r["response_text"])
        for r in usage_query.rows(conn, UsageFilter(), 1, 10)["data"]
    }
    assert got == {
        "off": (None, None),
        "on": ("secret prompt", "the answer"),
        "plain": (None, None),
    }


def test_failed_batch_is_not_half_saved(conn: sqlite3.Connection) -> None:
    bad = rec(prompt_tokens="not a number")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        usage_db.insert_batch(conn, [rec(), bad], False)
    assert count(conn) == 0 and count(conn, "rollup_hour") == 0


# -- pruning ----------------------------------------------------------------------------------
def test_prune_by_age_rows_and_content(conn: sqlite3.Connection) -> None:
    day = 86400
    old = [rec(ts=NOW - 40 * day + i, request_id=f"old{i}") for i in range(3)]
    mid = [rec(ts=NOW - 10 * day + i, request_id=f"mid{i}", prompt_text="p") for i in range(3)]
    new = [rec(ts=NOW - 60 + i, request_id=f"new{i}", prompt_text="p") for i in range(4)]
    usage_db.insert_batch(conn, old + mid + new, True)
    result = usage_db.prune(conn, NOW, retention_days=30, retention_rows=5, content_days=7)
    # mid0/mid1 go over the row limit (their text with them); mid2's text is past 7 days.
    assert (result.by_age, result.by_count, result.content) == (3, 2, 1)
    kept = [r["request_id"] for r in usage_query.rows(conn, UsageFilter(), 1, 50)["data"]]
    assert kept == ["new3", "new2", "new1", "new0", "mid2"]
    assert conn.execute("SELECT MIN(hour) FROM rollup_hour").fetchone()[0] >= int(
        (NOW - 30 * day) // 3600
    )
    assert count(conn) == 5 and count(conn, "content") == 4  # the row outlives its text
    later = NOW + 8 * day
    assert (
        usage_db.prune(conn, later, retention_days=0, retention_rows=0, content_days=7).content == 4
    )
    assert count(conn) == 5 and count(conn, "content") == 0


def test_prune_zero_keeps_everything(conn: sqlite3.Connection) -> None:
    usage_db.insert_batch(conn, [rec(ts=NOW - 400 * 86400), rec()], False)
    assert usage_db.prune(conn, NOW, 0, 0, 0) == usage_db.PruneResult()
    assert count(conn) == 2


def test_prune_in_chunks(conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_db, "PRUNE_CHUNK", 7)
    usage_db.insert_batch(conn, [rec(ts=NOW - 100 + i) for i in range(50)], False)
    assert usage_db.prune(conn, NOW, 0, 12, 0).by_count == 38
    assert count(conn) == 12


# -- filters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, UsageFilter()),
        ({"range": "24h"}, UsageFilter(since=NOW - 86400, range="24h")),
        ({"range": "all"}, UsageFilter(range="all")),
        (
            {"key": " k1 ", "model": "llama3:latest", "status": "ERROR"},
            UsageFilter(key_id="k1", model="llama3:latest", status="error"),
        ),
        ({"status": "429"}, UsageFilter(status="429")),
        ({"since": "2026-09-01"}, UsageFilter(since=1788220800.0)),
        (
            {"since": "2026-09-01T10:00:00Z", "until": "2026-09-01T14:00:00+02:00"},
            UsageFilter(since=1788256800.0, until=1788264000.0),
        ),
        ({"until": "2026-09-01T10:00"}, UsageFilter(until=1788256800.0)),
        ({"since": "1788220800", "range": "7d"}, UsageFilter(since=1788220800.0)),
    ],
)
def test_parse_filter(query: dict[str, str], expected: UsageFilter) -> None:
    assert parse_filter(query, NOW) == expected


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (
            {"status": "teapot"},
            "status",
            "`status` must be an HTTP status code (e.g. 429) or one of "
            "ok, error, 4xx, 5xx, cancelled; got 'teapot'.",
        ),
        (
            {"status": "999"},
            "status",
            "`status` must be an HTTP status code (e.g. 429) or one of "
            "ok, error, 4xx, 5xx, cancelled; got '999'.",
        ),
        ({"range": "2w"}, "range", "`range` must be one of 1h, 24h, 7d, 30d, 90d, all; got '2w'."),
        (
            {"since": "yesterday"},
            "since",
            "`since` must be an ISO 8601 date or time (e.g. "
            "2026-11-01 or 2026-11-01T10:00:00Z) or epoch seconds; got 'yesterday'.",
        ),
        (
            {"until": "-5"},
            "until",
            "`until` must be between 1970-01-01 and one year from now; got '-5'.",
        ),
        (
            {"until": "nan"},
            "until",
            "`until` must be between 1970-01-01 and one year from now; got 'nan'.",
        ),
        (
            {"since": "300000000000"},
            "since",
            "`since` must be between 1970-01-01 and one year from now; got '300000000000'.",
        ),
        (
            {"since": "9999-12-31"},
            "since",
            "`since` must be between 1970-01-01 and one year from now; got '9999-12-31'.",
        ),
        (
            {"since": "1969-12-31"},
            "since",
            "`since` must be between 1970-01-01 and one year from now; got '1969-12-31'.",
        ),
        (
            {"since": "2026-09-02", "until": "2026-09-01"},
            "until",
            "`until` must be later than `since`.",
        ),
        (
            {"since": "2026-09-01T10:00:00Z", "until": "2026-09-01T12:00:00+02:00"},
            "until",
            "`until` must be later than `since`.",
        ),
    ],
)
def test_parse_filter_errors(query: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(query, NOW)
    assert (info.value.field, info.value.message) == (field, message)


def test_default_range_and_query_roundtrip() -> None:
    f = parse_filter({"key": "k1", "status": "5xx"}, NOW, default_range="7d")
    assert f == UsageFilter(since=NOW - 7 * 86400, key_id="k1", status="5xx", range="7d")
    assert f.query() == {"range": "7d", "key": "k1", "status": "5xx"}
    g = parse_filter({"since": "2026-09-01", "until": "2026-09-02"}, NOW)
    assert g.query() == {"since": "2026-09-01T00:00:00Z", "until": "2026-09-02T00:00:00Z"}
    assert parse_filter(g.query(), NOW) == g


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, (1, 50)),
        ({"page": "3", "per_page": "500"}, (3, 500)),
        ({"page": " 2 "}, (2, 50)),
    ],
)
def test_parse_page(query: dict[str, str], expected: tuple[int, int]) -> None:
    assert parse_page(query) == expected


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"page": "0"}, "page", "`page` must be between 1 and 1000000; got 0."),
        ({"per_page": "501"}, "per_page", "`per_page` must be between 1 and 500; got 501."),
        ({"per_page": "ten"}, "per_page", "`per_page` must be a whole number; got 'ten'."),
    ],
)
def test_parse_page_errors(query: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_page(query)
    assert (info.value.field, info.value.message) == (field, message)


# -- percentiles and aggregates ---------------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [
        [100.0] * 10,
        [float(v) for v in range(1, 1001)],
        [50.0, 60.0, 5000.0, 20000.0],
        [3.0, 3.0, 4.0],
        [5e5, 4e5],
    ],
)
def test_percentile_within_one_bucket(values: list[float]) -> None:
    hist = [0] * usage_db.HIST_BUCKETS
    for v in values:
        hist[usage_db.bucket_of(v)] += 1
    for q in (0.5, 0.95):
        exact = sorted(values)[max(0, int(q * len(values) + 0.999999) - 1)]
        got = percentile(hist, q)
        assert got is not None
        assert exact / 1.36 <= got <= exact * 1.36, (q, exact, got)
    assert percentile([0] * usage_db.HIST_BUCKETS, 0.5) is None
    above = [0] * usage_db.HIST_BUCKETS
    above[usage_db.bucket_of(1e9)] = 1  # beyond the top edge: reported as at least the edge
    assert percentile(above, 0.5) >= usage_db.HIST_EDGES_MS[-1]


def test_aggregates_series_totals_and_tops(conn: sqlite3.Connection) -> None:
    recs = [
        rec(
            ts=NOW - 3600 * h - 1,
            key_id=k,
            key_name=k.upper(),
            ollama_model=m,
            status=s,
            latency_ms=100.0,
            ttft_ms=20.0,
        )
        for h in range(5)
        for k, m, s in (("k1", "a:latest", 200), ("k1", "b:latest", 200), ("k2", "a:latest", 429))
    ]
    usage_db.insert_batch(conn, recs, False)
    agg = usage_query.aggregates(conn, parse_filter({"range": "24h"}, NOW), NOW)
    assert agg["bucket_seconds"] == 3600 and len(agg["series"]) == 25
    assert [p["requests"] for p in agg["series"][-6:]] == [0, 3, 3, 3, 3, 3]
    t = agg["totals"]
    assert (t["requests"], t["errors"], t["prompt_tokens"], t["completion_tokens"]) == (
        15,
        5,
        150,
        75,
    )
    assert t["error_rate"] == pytest.approx(1 / 3)
    assert 100 / 1.36 <= t["latency_p50_ms"] <= 136 and 20 / 1.36 <= t["ttft_p95_ms"] <= 27.2
    assert [(k["key_id"], k["key_name"], k["requests"]) for k in agg["keys"]] == [
        ("k1", "K1", 10),
        ("k2", "K2", 5),
    ]
    assert [(m["model"], m["requests"]) for m in agg["models"]] == [
        ("a:latest", 10),
        ("b:latest", 5),
    ]
    only = usage_query.aggregates(conn, parse_filter({"range": "24h", "key": "k2"}, NOW), NOW)
    assert only["totals"]["requests"] == 5 and only["totals"]["error_rate"] == 1.0
    week = usage_query.aggregates(conn, parse_filter({"range": "7d"}, NOW), NOW)
    assert week["bucket_seconds"] == 86400 and sum(p["requests"] for p in week["series"]) == 15
    # Daily charts count whole UTC days: the last 7 days plus today, 8 buckets.
    assert len(week["series"]) == 8 and week["since"].endswith("T00:00:00Z")
    assert week["series"][-1]["t"] == NOW - NOW % 86400


@pytest.mark.parametrize(
    "query", [{"since": "0"}, {"since": "1970-01-01", "until": str(NOW)}, {"range": "all"}]
)
def test_huge_ranges_have_bounded_charts(conn: sqlite3.Connection, query: dict[str, str]) -> None:
    usage_db.insert_batch(conn, [rec(ts=NOW - 2 * 86400), rec(ts=1_000_000.0)], False)
    agg = usage_query.aggregates(conn, parse_filter(query, NOW), NOW)
    assert len(agg["series"]) <= usage_query.MAX_BUCKETS
    assert agg["bucket_seconds"] % 86400 == 0 and agg["bucket_seconds"] > 86400
    assert sum(p["requests"] for p in agg["series"]) == agg["totals"]["requests"] == 2
    assert all(b["t"] % agg["bucket_seconds"] == 0 for b in agg["series"])


def test_rows_filters_and_pagination(conn: sqlite3.Connection) -> None:
    recs = [
        rec(
            ts=NOW - 1000 + i,
            request_id=str(i),
            key_id="k1" if i % 2 else "k2",
            status=(200, 404, 500, 200)[i % 4],
            cancelled=i == 7,
        )
        for i in range(20)
    ]
    usage_db.insert_batch(conn, recs, False)

    def ids(query: dict[str, str], page: int = 1, per_page: int = 50) -> list[str]:
        out = usage_query.rows(conn, parse_filter(query, NOW), page, per_page)
        return [r["request_id"] for r in out["data"]]

    assert ids({}) == [str(i) for i in range(19, -1, -1)]
    assert ids({"key": "k1", "status": "error"}) == ["17", "13", "9", "5", "1"]
    assert ids({"status": "5xx"}) == ["18", "14", "10", "6", "2"]
    assert ids({"status": "404"}) == ["17", "13", "9", "5", "1"]
    assert ids({"status": "cancelled"}) == ["7"]
    assert ids({"since": str(NOW - 1000 + 15), "until": str(NOW - 1000 + 18)}) == ["17", "16", "15"]
    assert ids({"model": "other:latest"}) == []
    page2 = usage_query.rows(conn, UsageFilter(), 2, 8)
    assert [r["request_id"] for r in page2["data"]] == [str(i) for i in range(11, 3, -1)]
    assert page2["has_more"] is True
    assert usage_query.rows(conn, UsageFilter(), 3, 8)["has_more"] is False
    walked, cursor = [], None
    while batch := usage_query.rows_after(conn, UsageFilter(), cursor, 6):
        walked += [r["request_id"] for r in batch]
        cursor = (batch[-1]["ts"], batch[-1]["id"])
    assert walked == [str(i) for i in range(19, -1, -1)]


def test_key_summary(conn: sqlite3.Connection) -> None:
    usage_db.insert_batch(
        conn, [rec(ts=NOW - d * 86400) for d in (0, 0, 2, 9)] + [rec(key_id="k2")], False
    )
    s = usage_query.key_summary(conn, "k1", NOW)
    assert [p["requests"] for p in s["series"]] == [0, 0, 0, 0, 1, 0, 2]
    assert (s["requests"], s["total_tokens"]) == (3, 45)
    assert s["last_request"] == usage_query.iso(NOW)


# -- the recorder -----------------------------------------------------------------------------
async def test_recorder_writes_in_batches_and_survives_restart(tmp_path: Path) -> None:
    recorder = UsageRecorder(tmp_path)
    await recorder.start()
    for i in range(2500):
        recorder.record(rec(request_id=str(i)))
    assert recorder.queued == 2500  # record() only queues
    await recorder.flush()
    assert recorder.stats.written == 2500 and recorder.queued == 0
    recorder.record(rec(request_id="last"))
    await recorder.close()  # flushes what is queued
    again = UsageRecorder(tmp_path)
    await again.start()
    page = await again.read(usage_query.rows, UsageFilter(), 1, 1)
    assert page["data"][0]["request_id"] == "last"
    assert (
        await again.read(lambda c: c.execute("SELECT COUNT(*) FROM requests").fetchone()[0]) == 2501
    )
    await again.close()


async def test_recorder_stores_content_only_when_setting_on(tmp_path: Path) -> None:
    settings = {"content_logging": False}
    recorder = UsageRecorder(tmp_path, settings.get)
    await recorder.start()
    recorder.record(rec(request_id="a", prompt_text="hello"))
    await recorder.flush()
    settings["content_logging"] = True
    recorder.record(rec(request_id="b", prompt_text="hello"))
    await recorder.flush()
    page = await recorder.read(usage_query.rows, UsageFilter(), 1, 10)
    assert {r["request_id"]: r["prompt_text"] for r in page["data"]} == {"a": None, "b": "hello"}
    await recorder.close()


async def test_full_disk_is_counted_retried_and_never_raises(tmp_path: Path) -> None:
    recorder = UsageRecorder(tmp_path)
    await recorder.start()
    recorder.record(rec())
    await recorder.flush()
    conn = recorder._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # a real SQLITE_FULL from here on
    for i in range(500):
        recorder.record(rec(request_id=str(i), user_agent="x" * 2000))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if recorder.stats.write_errors:
            break
    assert recorder.stats.write_errors >= 1 and recorder.queued == 500
    conn.execute("PRAGMA max_page_count = 1073741823")  # space again: the retry succeeds
    await recorder.flush()
    assert recorder.stats.written == 501 and recorder.stats.dropped == 0
    await recorder.close()


async def test_locked_database_is_counted(tmp_path: Path) -> None:
    recorder = UsageRecorder(tmp_path)
    recorder.BUSY_TIMEOUT = 0.05
    await recorder.start()
    blocker = sqlite3.connect(tmp_path / "usage.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    recorder.record(rec())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if recorder.stats.write_errors:
            break
    assert recorder.stats.write_errors >= 1
    blocker.execute("COMMIT")
    blocker.close()
    await recorder.flush()
    assert recorder.stats.written == 1
    await recorder.close()


async def test_unopenable_database_drops_and_counts(tmp_path: Path) -> None:
    (tmp_path / "usage.db").mkdir()  # a directory where the file should be
    recorder = UsageRecorder(tmp_path)
    await recorder.start()
    assert not recorder.available
    recorder.record(rec())
    await recorder.flush()
    assert recorder.stats.dropped == 1 and recorder.stats.write_errors == 1
    await recorder.close()


async def test_queue_is_bounded(tmp_path: Path) -> None:
    recorder = UsageRecorder(tmp_path)
    recorder.MAX_PENDING = 10
    for _ in range(15):
        recorder.record(rec())  # not started: nothing drains the queue
    assert recorder.queued == 10 and recorder.stats.dropped == 5
    await recorder.start()
    await recorder.close()
    assert recorder.stats.written == 10


async def test_listener_errors_never_escape(tmp_path: Path) -> None:
    recorder = UsageRecorder(tmp_path)
    seen: list[RequestRecord] = []

    def broken(r: RequestRecord) -> None:
        raise RuntimeError("boom")

    recorder.add_listener(broken)
    recorder.add_listener(seen.append)
    recorder.record(rec())
    assert recorder.stats.listener_errors == 1 and len(seen) == 1 and recorder.queued == 1


async def test_recorder_prune_reads_settings_at_prune_time(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"usage_retention_days": 0, "usage_retention_rows": 0}
    recorder = UsageRecorder(tmp_path, settings.get)
    await recorder.start()
    now = time.time()
    for i in range(10):
        recorder.record(rec(ts=now - i * 86400))
    await recorder.flush()
    assert (await recorder.prune(now)).by_age == 0
    settings["usage_retention_days"] = 3  # changed in the admin: applies on the next prune
    assert (await recorder.prune(now)).by_age == 6  # 4..9 days old; 3 days is the boundary
    settings["usage_retention_rows"] = 2
    assert (await recorder.prune(now)).by_count == 2
    await recorder.close()


def test_log_throttle() -> None:
    throttle = LogThrottle(interval=60)
    assert throttle.allow(1000.0) is True
    assert [throttle.allow(t) for t in (1001.0, 1059.0)] == [False, False]
    assert throttle.allow(1060.0) is True and throttle.suppressed == 2


async def test_pruner_applies_a_changed_setting_soon(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"usage_retention_days": 0, "usage_retention_rows": 0}
    recorder = UsageRecorder(tmp_path, settings.get)
    recorder.PRUNE_START_DELAY, recorder.PRUNE_CHECK = 0.0, 0.05
    await recorder.start()
    for i in range(10):
        recorder.record(rec(ts=time.time() - i))
    await recorder.flush()
    settings["usage_retention_rows"] = 4  # as if changed in the admin
    for _ in range(100):
        left = await recorder.read(
            lambda c: c.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        )
        if left == 4:
            break
        await asyncio.sleep(0.05)
    assert left == 4
    await recorder.close()


async def test_a_bad_record_is_dropped_alone_and_the_writer_lives_on(tmp_path: Path) -> None:
    recorder = UsageRecorder(tmp_path)
    await recorder.start()
    recorder.record(rec(request_id="before"))
    recorder.record(rec(request_id="bad", prompt_tokens="many"))  # type: ignore[arg-type]
    recorder.record(rec(request_id="after", user_agent="\udcff\udcfe broken bytes"))
    await recorder.flush()
    assert (recorder.stats.written, recorder.stats.dropped) == (2, 1)
    recorder.record(rec(request_id="later"))
    await recorder.flush()
    got = await recorder.read(usage_query.rows, UsageFilter(), 1, 10)
    assert {r["request_id"]: r["user_agent"] for r in got["data"]} == {
        "before": None,
        "after": "?? broken bytes",
        "later": None,
    }
    await recorder.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("plain", "plain"),
        ("naïve ☃", "naïve ☃"),
        ("a\ud800b", "a?b"),
    ],
)
def test_storable(text: str | None, expected: str | None) -> None:
    assert usage_db.storable(text) == expected
