"""The usage database: schema migrations, batched inserts with hourly rollups, retention pruning.

Every function here is synchronous and takes an open sqlite3 connection; the recorder runs them
in a worker thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from state.usage import RequestRecord

log = logging.getLogger(__name__)

DB_NAME = "usage.db"

# Latency/TTFT histogram bucket upper edges in ms: 5 ms x 1.35^i up to ~10 minutes. Rollups keep
# one count per bucket so p50/p95 over any range is a SUM over rollup rows (fast with 1M rows);
# a percentile read from it is accurate to within one bucket (+-35%, interpolated
# geometrically, typically much closer).
HIST_EDGES_MS: tuple[float, ...] = tuple(5.0 * 1.35**i for i in range(40))
HIST_BUCKETS = len(HIST_EDGES_MS) + 1  # the last bucket is "above the top edge"
LAT_COLS = tuple(f"lat_h{i}" for i in range(HIST_BUCKETS))
TTFT_COLS = tuple(f"ttft_h{i}" for i in range(HIST_BUCKETS))

REQUEST_COLS = (
    "ts",
    "key_id",
    "key_name",
    "endpoint",
    "model",
    "ollama_model",
    "rollup_model",
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
)

_SUM_COLS = (
    "requests",
    "errors",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "latency_ms_sum",
    "ttft_count",
    "ttft_ms_sum",
)

# Versioned migrations: MIGRATIONS[i] brings PRAGMA user_version from i to i + 1. Append only.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        key_id TEXT,
        key_name TEXT,
        endpoint TEXT NOT NULL,
        model TEXT,
        ollama_model TEXT,
        rollup_model TEXT NOT NULL,
        stream INTEGER NOT NULL,
        status INTEGER NOT NULL,
        error_code TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER,
        latency_ms REAL NOT NULL,
        ttft_ms REAL,
        load_ms REAL,
        tokens_per_s REAL,
        client_ip TEXT,
        user_agent TEXT,
        cancelled INTEGER NOT NULL,
        request_id TEXT
    );
    CREATE INDEX requests_ts ON requests(ts);
    CREATE INDEX requests_key_ts ON requests(key_id, ts);
    CREATE INDEX requests_model_ts ON requests(rollup_model, ts);
    CREATE INDEX requests_status_ts ON requests(status, ts);
    CREATE TABLE content (
        request_id INTEGER PRIMARY KEY REFERENCES requests(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        prompt TEXT,
        response TEXT
    );
    CREATE INDEX content_ts ON content(ts);
    CREATE TABLE rollup_hour (
        hour INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        key_name TEXT,
        {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _SUM_COLS)},
        {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in LAT_COLS + TTFT_COLS)},
        PRIMARY KEY (hour, key_id, model)
    ) WITHOUT ROWID;
    """,
    # 2: daily rollups, so charts over weeks sum ~24x fewer rows; backfilled from the hours.
    f"""
    CREATE TABLE rollup_day (
        day INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        key_name TEXT,
        {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _SUM_COLS)},
        {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in LAT_COLS + TTFT_COLS)},
        PRIMARY KEY (day, key_id, model)
    ) WITHOUT ROWID;
    INSERT INTO rollup_day
        SELECT hour / 24, key_id, model, MAX(key_name),
        {", ".join(f"SUM({c})" for c in _SUM_COLS + LAT_COLS + TTFT_COLS)}
        FROM rollup_hour GROUP BY hour / 24, key_id, model;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# Rollup tables: (table, time column, seconds per unit).
ROLLUPS = (("rollup_hour", "hour", 3600), ("rollup_day", "day", 86400))


def bucket_of(ms: float) -> int:
    """The histogram bucket index of a duration in ms."""
    return bisect.bisect_left(HIST_EDGES_MS, ms)


def connect(path: Path, *, timeout: float = 2.0) -> sqlite3.Connection:
    """Open the database with the pragmas every connection needs."""
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), so a write batch is
    # all-or-nothing and never half-saved.
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def make_private(path: Path) -> None:
    """Create the database file 0600 (and tighten its WAL/shm files, and an old file).

    It holds key names, client IPs and, with content logging, every prompt and answer. SQLite
    gives the -wal and -shm files it creates the main file's permissions.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(name), 0o600)


def open_db(path: Path, timeout: float = 2.0) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database; returns the writer connection."""
    make_private(path)
    conn = connect(path, timeout=timeout)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations the database lacks; returns the resulting version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"usage.db has schema version {version}, newer than this "
            f"gateway understands ({SCHEMA_VERSION})"
        )
    for number in range(version, SCHEMA_VERSION):
        with transaction(conn):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        log.info("usage.db migrated to schema version %s", number + 1)
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit on its own)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def rollup_model(rec: RequestRecord) -> str:
    """The model a record counts under: the resolved Ollama name, else the requested one."""
    return rec.ollama_model or rec.model or ""


def storable(text: str | None) -> str | None:
    """Text SQLite can store: lone surrogates (from undecodable client bytes) replaced."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _request_row(rec: RequestRecord) -> tuple[Any, ...]:
    """One record as a row of the requests table, in REQUEST_COLS order."""
    t = storable
    return (
        rec.ts,
        t(rec.key_id),
        t(rec.key_name),
        t(rec.endpoint),
        t(rec.model),
        t(rec.ollama_model),
        t(rollup_model(rec)),
        int(rec.stream),
        int(rec.status),
        t(rec.error_code),
        int(rec.prompt_tokens or 0),
        int(rec.completion_tokens or 0),
        rec.reasoning_tokens,
        float(rec.latency_ms or 0.0),
        rec.ttft_ms,
        rec.load_ms,
        rec.tokens_per_s,
        t(rec.client_ip),
        t(rec.user_agent),
        int(rec.cancelled),
        t(rec.request_id),
    )


@dataclass(slots=True)
class _Rollup:
    """Sums for one (hour, key, model) cell within a batch."""

    key_name: str | None
    sums: list[int]
    lat: list[int]
    ttft: list[int]


def rollup_batch(
    recs: Iterable[RequestRecord], period: int = 3600
) -> dict[tuple[int, str, str], _Rollup]:
    """Aggregate records into (time unit, key_id, model) cells of `period` seconds."""
    cells: dict[tuple[int, str, str], _Rollup] = {}
    for rec in recs:
        cell_key = (
            int(rec.ts // period),
            storable(rec.key_id) or "",
            storable(rollup_model(rec)) or "",
        )
        cell = cells.get(cell_key)
        if cell is None:
            cell = cells[cell_key] = _Rollup(
                storable(rec.key_name), [0] * len(_SUM_COLS), [0] * HIST_BUCKETS, [0] * HIST_BUCKETS
            )
        if rec.key_name:
            cell.key_name = storable(rec.key_name)
        s = cell.sums
        s[0] += 1
        s[1] += rec.status >= 400
        s[2] += bool(rec.cancelled)
        s[3] += int(rec.prompt_tokens or 0)
        s[4] += int(rec.completion_tokens or 0)
        s[5] += int(rec.reasoning_tokens or 0)
        s[6] += round(rec.latency_ms or 0.0)
        cell.lat[bucket_of(rec.latency_ms or 0.0)] += 1
        if rec.ttft_ms is not None:
            s[7] += 1
            s[8] += round(rec.ttft_ms)
            cell.ttft[bucket_of(rec.ttft_ms)] += 1
    return cells


def _upsert_sql(table: str, unit: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE adding a batch's cells into a rollup table."""
    cols = (unit, "key_id", "model", "key_name") + _SUM_COLS + LAT_COLS + TTFT_COLS
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT ({unit}, key_id, model) DO UPDATE SET "
        "key_name = COALESCE(excluded.key_name, key_name), "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUM_COLS + LAT_COLS + TTFT_COLS)
    )


_UPSERTS = tuple((_upsert_sql(table, unit), period) for table, unit, period in ROLLUPS)
_INSERT_REQUEST = (
    f"INSERT INTO requests ({', '.join(REQUEST_COLS)}) "
    f"VALUES ({', '.join('?' * len(REQUEST_COLS))})"
)


def insert_batch(
    conn: sqlite3.Connection, recs: Sequence[RequestRecord], store_content: bool
) -> None:
    """Write records and update their rollups in one transaction (all or nothing)."""
    with transaction(conn):
        plain = [r for r in recs if not (store_content and _has_content(r))]
        conn.executemany(_INSERT_REQUEST, [_request_row(r) for r in plain])
        if store_content:
            for rec in recs:
                if _has_content(rec):
                    cur = conn.execute(_INSERT_REQUEST, _request_row(rec))
                    conn.execute(
                        "INSERT INTO content (request_id, ts, prompt, response) "
                        "VALUES (?, ?, ?, ?)",
                        (
                            cur.lastrowid,
                            rec.ts,
                            storable(rec.prompt_text),
                            storable(rec.response_text),
                        ),
                    )
        for sql, period in _UPSERTS:
            conn.executemany(
                sql,
                [
                    (unit, key_id, model, cell.key_name, *cell.sums, *cell.lat, *cell.ttft)
                    for (unit, key_id, model), cell in rollup_batch(recs, period).items()
                ],
            )


def insert_each(
    conn: sqlite3.Connection, recs: Sequence[RequestRecord], store_content: bool
) -> int:
    """Write records one by one, skipping any that cannot be stored; returns how many failed.

    The fallback after a batch failed for a reason other than the database itself (a bad
    value): one bad record must not hold back, or take down, everything queued behind it.
    """
    failed = 0
    for rec in recs:
        try:
            insert_batch(conn, [rec], store_content)
        except sqlite3.OperationalError:
            raise  # the database itself (full, locked): the caller retries later
        except Exception:
            failed += 1
            log.warning("usage: a record could not be stored and was dropped", exc_info=True)
    return failed


def _has_content(rec: RequestRecord) -> bool:
    """True if the record carries prompt or response text."""
    return rec.prompt_text is not None or rec.response_text is not None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """How many rows one prune pass removed."""

    by_age: int = 0
    by_count: int = 0
    content: int = 0
    rollups: int = 0


PRUNE_CHUNK = 5000  # rows deleted per transaction, so a prune never holds the lock for long


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # SQLite may already have rolled back by itself (e.g. on SQLITE_FULL); a second
        # ROLLBACK would raise and hide the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def prune(
    conn: sqlite3.Connection,
    now: float,
    retention_days: int,
    retention_rows: int,
    content_days: int,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Delete rows past the retention limits (0 disables a limit), in short transactions."""
    by_age = rollups = by_count = content = 0
    if retention_days > 0:
        cutoff = now - retention_days * 86400
        by_age = _chunked(
            conn,
            "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE ts < ? LIMIT ?)",
            cutoff,
            stop,
        )
        with transaction(conn):
            for table, unit, period in ROLLUPS:
                rollups += conn.execute(
                    f"DELETE FROM {table} WHERE {unit} < ?", (int(cutoff // period),)
                ).rowcount
    if retention_rows > 0:
        excess = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] - retention_rows
        while excess > 0 and not (stop and stop.is_set()):
            with transaction(conn):
                cur = conn.execute(
                    "DELETE FROM requests WHERE id IN "
                    "(SELECT id FROM requests ORDER BY id LIMIT ?)",
                    (min(excess, PRUNE_CHUNK),),
                )
            by_count += cur.rowcount
            excess -= PRUNE_CHUNK
    if content_days > 0:
        content = _chunked(
            conn,
            "DELETE FROM content WHERE request_id IN "
            "(SELECT request_id FROM content WHERE ts < ? LIMIT ?)",
            now - content_days * 86400,
            stop,
        )
    return PruneResult(by_age, by_count, content, rollups)


def _chunked(conn: sqlite3.Connection, sql: str, arg: float, stop: threading.Event | None) -> int:
    """Run a `... LIMIT ?` delete repeatedly until it removes nothing."""
    removed = 0
    while True:
        with transaction(conn):
            count = conn.execute(sql, (arg, PRUNE_CHUNK)).rowcount
        removed += count
        if count < PRUNE_CHUNK or (stop and stop.is_set()):
            return removed
