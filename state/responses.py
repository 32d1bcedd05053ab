"""Stored Responses API responses (`store: true`): one SQLite table, scoped by key, with retention.

Every sqlite call runs in one dedicated worker thread, so the event loop never waits on the disk
and the connection is only ever used by the thread that opened it. A database that cannot be
opened or read never fails a request: lookups find nothing and writes are dropped, with a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from state.usage_db import make_private, transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_NAME = "responses.db"
RETENTION_SETTING = "response_retention_days"
DEFAULT_RETENTION_DAYS = 30
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record's JSON text; larger records are not stored
MAX_ID_CHARS = 128  # response ids and key ids
PRUNE_INTERVAL = 60.0  # seconds: `put` prunes expired rows at most this often
REOPEN_INTERVAL = 60.0  # seconds between attempts to open a database that failed to open
WARN_INTERVAL = 60.0  # seconds: repeated failures log one warning a minute, the rest at debug
PRUNE_CHUNK = 500  # rows deleted per transaction (records can be large), so no long lock

# Versioned migrations: MIGRATIONS[i] brings PRAGMA user_version from i to i + 1. Append only.
MIGRATIONS: tuple[str, ...] = (
    # A rowid table, not WITHOUT ROWID: records can be megabytes, which a clustered index on
    # `id` would keep in its b-tree pages.
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX responses_created_at ON responses(created_at);
    CREATE INDEX responses_key_id ON responses(key_id, created_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# Another key's row with the same id is left alone: a key can only overwrite its own response.
_UPSERT = (
    "INSERT INTO responses (id, key_id, created_at, record) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, record = excluded.record "
    "WHERE responses.key_id = excluded.key_id"
)


class SchemaTooNewError(sqlite3.DatabaseError):
    """responses.db was written by a newer gateway; opening it could corrupt it."""


class _Unavailable(Exception):
    """The database is not open (it failed to open recently, or the store is closed)."""


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the migrations the database lacks; returns the resulting version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path} has schema version {version}, newer than this gateway understands "
            f"({SCHEMA_VERSION}); upgrade the gateway, or move the file away to start empty"
        )
    for number in range(version, SCHEMA_VERSION):
        with transaction(conn):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        log.info("%s migrated to schema version %s", DB_NAME, number + 1)
    return SCHEMA_VERSION


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating 0600 if needed) and migrate the database."""
    make_private(path)  # records hold prompts and answers
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE).
    conn = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_id(name: str, value: str) -> str:
    """Raise ValueError unless `value` is a storable id of at most MAX_ID_CHARS characters."""
    if len(value) > MAX_ID_CHARS:
        raise ValueError(f"{name} is longer than {MAX_ID_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # aiohttp keeps undecodable URL bytes as lone surrogates; SQLite cannot store those.
        raise ValueError(f"{name} is not valid text") from None
    return value


class ResponseStore:
    """Stored responses in `data_dir/responses.db`, readable only by the key that stored them."""

    def __init__(self, data_dir: Path, settings: Callable[[str], Any]) -> None:
        self.path = Path(data_dir) / DB_NAME
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="responses-db")
        self._closed = False
        self._last_prune = -math.inf  # monotonic; read and written on the event loop only
        # Worker-thread state: touched only inside jobs running on the executor.
        self._conn: sqlite3.Connection | None = None
        self._last_open_attempt = -math.inf
        self._last_warning = -math.inf

    async def start(self) -> None:
        """Open and migrate the database, then prune once; raises SchemaTooNewError.

        A database that cannot be opened for another reason (a corrupt file, no permission)
        is logged and does not stop the gateway: the store then keeps nothing, and tries to
        open it again at most every REOPEN_INTERVAL seconds.
        """
        days = self._retention_days()
        try:
            await self._run(self._start_job)
        except SchemaTooNewError:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise
        self._last_prune = time.monotonic()
        await self._run(self._prune_job, days, time.time())

    async def close(self) -> None:
        """Finish queued work and close the database; later calls find and keep nothing."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_job)
        self._executor.shutdown(wait=True)  # the queue is empty: this only joins the thread

    async def put(
        self, key_id: str, response_id: str, record: dict[str, Any], created_at: float
    ) -> None:
        """Store (or replace) a response for `key_id`; dropped with a log if it cannot be kept."""
        _check_id("key_id", key_id)
        _check_id("response_id", response_id)
        if not math.isfinite(created_at):
            raise ValueError("created_at must be a finite number")
        days = self._retention_days()
        if days == 0 or self._closed:
            return
        try:
            # ensure_ascii: the text is then its own byte count, and lone surrogates from
            # client text become \ud800 escapes that SQLite can store.
            text = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            log.error(
                "stored response %s dropped: its record is not JSON (%s)",
                response_id,
                type(exc).__name__,
            )
            return
        if len(text) > MAX_RECORD_BYTES:
            log.warning(
                "stored response %s dropped: its record is %d bytes, over the %d byte limit",
                response_id,
                len(text),
                MAX_RECORD_BYTES,
            )
            return
        await self._run(self._put_job, key_id, response_id, text, float(created_at))
        now = time.monotonic()
        if not self._closed and now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            # Not awaited: the caller need not wait for old rows to go.
            future = self._executor.submit(self._prune_job, days, time.time())
            future.add_done_callback(_log_unexpected)

    async def get(self, key_id: str, response_id: str) -> dict[str, Any] | None:
        """The record `key_id` stored under `response_id`, or None (unknown, expired, other key)."""
        _check_id("key_id", key_id)
        _check_id("response_id", response_id)
        days = self._retention_days()
        if days == 0 or self._closed:
            return None
        return await self._run(self._get_job, key_id, response_id, _cutoff(days, time.time()))

    async def delete(self, key_id: str, response_id: str) -> bool:
        """Delete `key_id`'s response `response_id`; False if there was none to see."""
        _check_id("key_id", key_id)
        _check_id("response_id", response_id)
        days = self._retention_days()
        if days == 0 or self._closed:
            return False
        return await self._run(self._delete_job, key_id, response_id, _cutoff(days, time.time()))

    async def prune(self, now: float | None = None) -> int:
        """Delete the rows older than the retention (all of them at 0); returns how many."""
        if self._closed:
            return 0
        days = self._retention_days()
        return await self._run(self._prune_job, days, time.time() if now is None else now)

    def _retention_days(self) -> int:
        """The retention setting, read on the event loop (the registry is not thread-safe)."""
        value = self._settings(RETENTION_SETTING)
        try:
            return max(int(value), 0)
        except (TypeError, ValueError):
            log.warning(
                "%s is not an integer (%r); using %d",
                RETENTION_SETTING,
                value,
                DEFAULT_RETENTION_DAYS,
            )
            return DEFAULT_RETENTION_DAYS

    async def _run(self, job: Callable[..., T], *args: Any) -> T:
        """Run one job on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, job, *args)

    # --- jobs: these run on the worker thread only --------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The open connection, opening it if due; raises _Unavailable or the open's error."""
        if self._conn is None:
            now = time.monotonic()
            if now - self._last_open_attempt < REOPEN_INTERVAL:
                raise _Unavailable
            self._last_open_attempt = now
            self._conn = open_db(self.path)
        return self._conn

    def _failed(self, action: str) -> None:
        """Log a failure from inside an `except`: a warning a minute at most, else debug."""
        now = time.monotonic()
        if now - self._last_warning >= WARN_INTERVAL:
            self._last_warning = now
            log.warning(
                "%s: %s failed; stored responses are unavailable until it works",
                self.path,
                action,
                exc_info=True,
            )
        else:
            log.debug("%s: %s failed", self.path, action, exc_info=True)

    def _start_job(self) -> None:
        """Open the database at start; only SchemaTooNewError escapes."""
        try:
            self._connection()
        except SchemaTooNewError:
            raise
        except (sqlite3.Error, OSError):
            self._failed("opening the database")

    def _close_job(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                log.warning("%s: closing failed", self.path, exc_info=True)

    def _put_job(self, key_id: str, response_id: str, text: str, created_at: float) -> None:
        """Insert or replace one row."""
        try:
            conn = self._connection()
            with transaction(conn):
                stored = conn.execute(_UPSERT, (response_id, key_id, created_at, text)).rowcount
        except _Unavailable:
            log.debug("stored response %s dropped: the database is unavailable", response_id)
            return
        except (sqlite3.Error, OSError):
            self._failed("storing a response")
            return
        if not stored:
            log.warning("stored response %s dropped: another key holds that id", response_id)

    def _get_job(self, key_id: str, response_id: str, cutoff: float) -> dict[str, Any] | None:
        """Read and decode one unexpired row of `key_id`."""
        try:
            row = (
                self._connection()
                .execute(
                    "SELECT record FROM responses WHERE id = ? AND key_id = ? AND created_at >= ?",
                    (response_id, key_id, cutoff),
                )
                .fetchone()
            )
        except _Unavailable:
            return None
        except (sqlite3.Error, OSError):
            self._failed("reading a response")
            return None
        if row is None:
            return None
        try:
            record = json.loads(row[0])
        except (TypeError, ValueError):
            self._failed("decoding a stored response")
            return None
        return record if isinstance(record, dict) else None

    def _delete_job(self, key_id: str, response_id: str, cutoff: float) -> bool:
        """Delete one unexpired row of `key_id` (an expired one is left to the prune)."""
        try:
            conn = self._connection()
            with transaction(conn):
                deleted = conn.execute(
                    "DELETE FROM responses WHERE id = ? AND key_id = ? AND created_at >= ?",
                    (response_id, key_id, cutoff),
                ).rowcount
        except _Unavailable:
            return False
        except (sqlite3.Error, OSError):
            self._failed("deleting a response")
            return False
        return deleted > 0

    def _prune_job(self, days: int, now: float) -> int:
        """Delete expired rows in short transactions; returns how many."""
        removed = 0
        try:
            conn = self._connection()
            while True:
                with transaction(conn):
                    count = conn.execute(
                        "DELETE FROM responses WHERE id IN "
                        "(SELECT id FROM responses WHERE created_at < ? LIMIT ?)",
                        (_cutoff(days, now), PRUNE_CHUNK),
                    ).rowcount
                removed += count
                if count < PRUNE_CHUNK:
                    break
        except _Unavailable:
            return removed
        except (sqlite3.Error, OSError):
            self._failed("pruning expired responses")
        if removed:
            log.info("pruned %d expired stored responses", removed)
        return removed


def _cutoff(days: int, now: float) -> float:
    """The oldest `created_at` still kept; with 0 days, nothing is."""
    return now - days * 86400 if days > 0 else math.inf


def _log_unexpected(future: Future[int]) -> None:
    """Log an exception a background prune raised (the jobs catch database errors themselves)."""
    exc = None if future.cancelled() else future.exception()
    if exc is not None:
        log.error("background prune of stored responses failed", exc_info=exc)
