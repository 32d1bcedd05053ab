"""Usage records, one per API request, and the recorder that stores them in SQLite off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from state import usage_db

log = logging.getLogger(__name__)
T = TypeVar("T")

Listener = Callable[["RequestRecord"], None]
RETENTION_SETTINGS = ("usage_retention_days", "usage_retention_rows", "content_retention_days")
SettingGetter = Callable[[str], Any]


@dataclass(slots=True)
class RequestRecord:
    """Everything recorded about one /v1 request, filled in as the request proceeds."""

    ts: float = field(default_factory=time.time)
    key_id: str | None = None
    key_name: str | None = None
    endpoint: str = ""
    model: str | None = None  # as requested
    ollama_model: str | None = None  # resolved
    stream: bool = False
    status: int = 200
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    load_ms: float | None = None
    tokens_per_s: float | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    cancelled: bool = False
    request_id: str | None = None
    prompt_text: str | None = None  # only with content logging on
    response_text: str | None = None


class UsageUnavailable(Exception):
    """The usage database could not be opened or read."""


class LogThrottle:
    """Allows one log line per interval and counts what it held back (a full disk repeats)."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last = -1e18
        self.suppressed = 0

    def allow(self, now: float | None = None) -> bool:
        """True when a line may be logged now."""
        now = time.monotonic() if now is None else now
        if now - self._last >= self.interval:
            self._last = now
            return True
        self.suppressed += 1
        return False


@dataclass
class RecorderStats:
    """Counters exported on /metrics."""

    written: int = 0
    write_errors: int = 0
    dropped: int = 0
    listener_errors: int = 0


class UsageRecorder:
    """Queues records in memory and writes them to usage.db in batches from a worker thread.

    `record()` is cheap, never blocks and never raises: a failed write (disk full, database
    locked) is logged at most once a minute, counted in `stats`, and retried; the queue is
    bounded so memory stays bounded if the disk never recovers.
    """

    MAX_PENDING = 100_000
    BATCH = 2000
    FLUSH_DELAY = 0.05  # seconds to gather a batch before writing
    PRUNE_INTERVAL = 600.0
    PRUNE_CHECK = 30.0  # how often the retention settings are compared with the last prune
    PRUNE_START_DELAY = 5.0
    BUSY_TIMEOUT = 2.0  # seconds a write waits on a locked database before counting an error

    def __init__(
        self, data_dir: str | Path | None = None, settings: SettingGetter | None = None
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.settings = settings
        self.recent: list[RequestRecord] = []
        self.stats = RecorderStats()
        self._listeners: list[Listener] = []
        self._pending: list[RequestRecord] = []
        self._conn: sqlite3.Connection | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._write_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._stop_thread = threading.Event()  # lets a long prune stop between chunks
        self._writer_task: asyncio.Task[None] | None = None
        self._pruner_task: asyncio.Task[None] | None = None
        self._throttle = LogThrottle()
        self._closing = False

    # -- the request path --------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call `listener(rec)` for every record (the metrics use this)."""
        self._listeners.append(listener)

    def record(self, rec: RequestRecord) -> None:
        """Queue one record; never blocks and never raises."""
        try:
            self.recent.append(rec)
            if len(self.recent) > 1000:
                del self.recent[:-1000]
            for listener in self._listeners:
                try:
                    listener(rec)
                except Exception:
                    self.stats.listener_errors += 1
                    if self._throttle.allow():
                        log.exception("usage listener failed")
            if len(self._pending) >= self.MAX_PENDING:
                self.stats.dropped += 1
                return
            self._pending.append(rec)
            self._idle.clear()
            self._wake.set()
        except Exception:  # pragma: no cover - belt and braces: recording must never fail a request
            log.exception("usage record failed")

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The database file, once a data directory is known."""
        return self.data_dir / usage_db.DB_NAME if self.data_dir is not None else None

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._pending)

    @property
    def available(self) -> bool:
        """True when the database is open."""
        return self._conn is not None

    def setting(self, name: str, default: Any) -> Any:
        """A runtime setting, read at use time (the admin can change it)."""
        if self.settings is None:
            return default
        try:
            value = self.settings(name)
        except Exception:
            return default
        return default if value is None else value

    async def start(self) -> None:
        """Open the database and start the writer and pruner tasks."""
        self._closing = False
        self._stop.clear()
        self._stop_thread.clear()
        if self.path is not None:
            try:
                self._conn = await asyncio.to_thread(usage_db.open_db, self.path, self.BUSY_TIMEOUT)
            except (sqlite3.Error, OSError) as exc:
                self.stats.write_errors += 1
                log.error(
                    "usage database %s cannot be opened (%s); requests are served but not stored",
                    self.path,
                    exc,
                )
        self._writer_task = asyncio.create_task(self._writer(), name="usage-writer")
        self._pruner_task = asyncio.create_task(self._pruner(), name="usage-pruner")

    async def close(self) -> None:
        """Write what is queued (one attempt per batch), stop the tasks, close the database."""
        # The writer is not cancelled: a cancelled to_thread keeps running, and a batch could
        # then be written twice or share the connection with the final flush.
        self._closing = True
        self._stop.set()
        self._stop_thread.set()
        self._wake.set()
        if self._pruner_task is not None:
            self._pruner_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner_task
        if self._writer_task is not None:
            await self._writer_task
        self._writer_task = self._pruner_task = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    async def flush(self) -> None:
        """Wait (up to 10 s) until everything recorded so far is written or given up on."""
        if self._pending and self._writer_task is not None:
            self._wake.set()
            async with asyncio.timeout(10.0):
                await self._idle.wait()

    # -- writing -----------------------------------------------------------------------------
    async def _writer(self) -> None:
        """Drain the queue in batches; back off while writes fail; finish when closing."""
        backoff = 0.5
        while True:
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                if not self._closing:
                    await asyncio.sleep(self.FLUSH_DELAY)
                continue
            if self._conn is None:
                self._drop_pending("the usage database is not open")
            elif await self._write_some():
                backoff = 0.5
            elif self._closing:
                self._drop_pending("shutting down after a failed write")
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)

    def _drop_pending(self, reason: str) -> None:
        """Give up on the queued records, counting them."""
        if self._throttle.allow() or self._closing:
            log.warning("usage: %d records not stored: %s", len(self._pending), reason)
        self.stats.dropped += len(self._pending)
        self._pending.clear()

    async def _write_some(self) -> bool:
        """Write one batch from the head of the queue; False (batch kept) if the write failed."""
        batch = self._pending[: self.BATCH]
        store_content = bool(self.setting("content_logging", False))
        failed = 0
        try:
            try:
                await self.run_write(usage_db.insert_batch, batch, store_content)
            except (sqlite3.OperationalError, OSError, UsageUnavailable):
                raise
            except Exception:
                # A value in the batch cannot be stored: write the rest one by one.
                self.stats.write_errors += 1
                failed = await self.run_write(usage_db.insert_each, batch, store_content)
        except (sqlite3.Error, OSError, UsageUnavailable) as exc:
            self.stats.write_errors += 1
            if self._throttle.allow():
                log.error(
                    "usage: writing %d records failed (%s); will retry (%d errors so far, "
                    "%d queued)",
                    len(batch),
                    exc,
                    self.stats.write_errors,
                    len(self._pending),
                )
            return False
        del self._pending[: len(batch)]
        self.stats.written += len(batch) - failed
        self.stats.dropped += failed
        return True

    async def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(writer_connection, *args) in a thread, one writer at a time."""
        async with self._write_lock:
            if self._conn is None:
                raise UsageUnavailable("the usage database is not open")
            future = asyncio.ensure_future(asyncio.to_thread(fn, self._conn, *args))
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # Keep the lock until the thread is done so the connection is never shared.
                with contextlib.suppress(Exception):
                    await future
                raise

    # -- pruning -----------------------------------------------------------------------------
    async def prune(self, now: float | None = None) -> usage_db.PruneResult:
        """Apply the retention settings once (read now, so admin changes apply)."""
        now = time.time() if now is None else now
        days = int(self.setting("usage_retention_days", 90))
        rows = int(self.setting("usage_retention_rows", 1_000_000))
        content_days = int(self.setting("content_retention_days", 7))
        result = await self.run_write(
            usage_db.prune, now, days, rows, content_days, self._stop_thread
        )
        if result.by_age or result.by_count or result.content:
            log.info(
                "usage: pruned %d old rows, %d over the row limit, %d content texts",
                result.by_age,
                result.by_count,
                result.content,
            )
        return result

    def _retention(self) -> tuple[Any, ...]:
        """The retention settings now in force."""
        return tuple(self.setting(name, None) for name in RETENTION_SETTINGS)

    async def _pruner(self) -> None:
        """Prune shortly after start, every PRUNE_INTERVAL, and soon after a setting changes."""
        await asyncio.sleep(self.PRUNE_START_DELAY)
        last: tuple[Any, ...] | None = None
        last_at = 0.0
        while True:
            current = self._retention()
            if current != last or time.monotonic() - last_at >= self.PRUNE_INTERVAL:
                try:
                    await self.prune()
                except (sqlite3.Error, OSError, UsageUnavailable) as exc:
                    if self._throttle.allow():
                        log.error("usage: pruning failed: %s", exc)
                last, last_at = current, time.monotonic()
            await asyncio.sleep(self.PRUNE_CHECK)

    # -- reading -----------------------------------------------------------------------------
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(read_connection, *args) in a thread on a fresh connection (WAL: no blocking)."""
        path = self.path
        if self._conn is None or path is None:
            raise UsageUnavailable("The usage database is not available; see the gateway log.")
        return await asyncio.to_thread(_read, path, fn, args)


def _read(path: Path, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Open a read connection, run fn, close it."""
    try:
        conn = usage_db.connect(path, timeout=5.0)
    except sqlite3.Error as exc:
        raise UsageUnavailable(f"The usage database cannot be opened: {exc}") from exc
    try:
        conn.execute("PRAGMA query_only = ON")
        return fn(conn, *args)
    except sqlite3.Error as exc:  # locked past the timeout, corrupt, gone: say so, no 500
        raise UsageUnavailable(f"The usage database cannot be read: {exc}") from exc
    finally:
        conn.close()
