"""The stored-responses database: scoping, retention, size bounds, schema versions, bad files."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from state import responses
from state.config import ConfigError, parse_config
from state.responses import DB_NAME, SCHEMA_VERSION, ResponseStore, SchemaTooNewError

DAY = 86400
RECORD: dict[str, Any] = {
    "response": {"id": "resp_1", "object": "response", "output": [], "status": "completed"},
    "input_items": [{"type": "message", "role": "user", "content": "hi \u00e9\u4e16"}],
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
}


def settings_of(days: int) -> Callable[[str], Any]:
    """A settings lookup giving `days` as the retention."""
    values = {"response_retention_days": days}
    return values.__getitem__


async def opened(path: Path, days: int = 30) -> ResponseStore:
    """A started store in `path`."""
    store = ResponseStore(path, settings_of(days))
    await store.start()
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ResponseStore]:
    store = await opened(tmp_path)
    yield store
    await store.close()


def row_count(path: Path) -> int:
    """Rows in the responses table, read directly."""
    conn = sqlite3.connect(path / DB_NAME)
    try:
        count: int = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finally:
        conn.close()
    return count


async def test_put_then_get_returns_the_record(store: ResponseStore) -> None:
    await store.put("key1", "resp_1", RECORD, time.time())
    assert await store.get("key1", "resp_1") == RECORD
    assert await store.get("key1", "resp_other") is None


async def test_put_again_replaces_the_record(store: ResponseStore) -> None:
    await store.put("key1", "resp_1", RECORD, time.time())
    await store.put("key1", "resp_1", {"response": {"id": "resp_1"}}, time.time())
    assert await store.get("key1", "resp_1") == {"response": {"id": "resp_1"}}


async def test_another_key_cannot_see_delete_or_overwrite(
    store: ResponseStore, tmp_path: Path
) -> None:
    await store.put("key1", "resp_1", RECORD, time.time())
    assert await store.get("key2", "resp_1") is None
    assert await store.delete("key2", "resp_1") is False
    await store.put("key2", "resp_1", {"response": {}}, time.time())
    assert await store.get("key1", "resp_1") == RECORD
    assert await store.get("key2", "resp_1") is None
    assert row_count(tmp_path) == 1


async def test_delete_removes_the_row(store: ResponseStore, tmp_path: Path) -> None:
    await store.put("key1", "resp_1", RECORD, time.time())
    assert await store.delete("key1", "resp_1") is True
    assert await store.get("key1", "resp_1") is None
    assert await store.delete("key1", "resp_1") is False
    assert row_count(tmp_path) == 0


async def test_retention_zero_keeps_nothing(tmp_path: Path) -> None:
    store = await opened(tmp_path, days=0)
    await store.put("key1", "resp_1", RECORD, time.time())
    assert await store.get("key1", "resp_1") is None
    assert await store.delete("key1", "resp_1") is False
    await store.close()
    assert row_count(tmp_path) == 0


async def test_retention_zero_prunes_rows_kept_before(tmp_path: Path) -> None:
    store = await opened(tmp_path, days=30)
    await store.put("key1", "resp_1", RECORD, time.time())
    await store.close()
    store = await opened(tmp_path, days=0)  # start() prunes
    await store.close()
    assert row_count(tmp_path) == 0


async def test_expired_rows_are_hidden_then_pruned(store: ResponseStore, tmp_path: Path) -> None:
    now = time.time()
    await store.put("key1", "old", RECORD, now - 31 * DAY)
    await store.put("key1", "older", RECORD, now - 90 * DAY)
    await store.put("key1", "fresh", RECORD, now - 29 * DAY)
    assert await store.get("key1", "old") is None  # before any prune
    assert await store.delete("key1", "old") is False
    assert await store.get("key1", "fresh") == RECORD
    assert row_count(tmp_path) == 3
    assert await store.prune() == 2
    assert row_count(tmp_path) == 1
    assert await store.prune() == 0
    assert await store.prune(now + 2 * DAY) == 1
    assert row_count(tmp_path) == 0


async def test_put_prunes_at_most_every_interval(
    store: ResponseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put("key1", "old", RECORD, time.time() - 31 * DAY)
    assert row_count(tmp_path) == 1  # start() pruned moments ago: put does not prune again
    monkeypatch.setattr(responses, "PRUNE_INTERVAL", 0.0)
    await store.put("key1", "fresh", RECORD, time.time())
    # The prune runs after the put on the one worker thread, so the next call sees it done.
    assert await store.prune() == 0
    assert row_count(tmp_path) == 1


async def test_oversize_record_is_dropped_with_a_warning(
    store: ResponseStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = {"response": {"output_text": "x" * responses.MAX_RECORD_BYTES}}
    with caplog.at_level(logging.WARNING, logger="state.responses"):
        await store.put("key1", "resp_big", big, time.time())
    assert await store.get("key1", "resp_big") is None
    assert row_count(tmp_path) == 0
    assert ["resp_big" in r.getMessage() for r in caplog.records] == [True]
    assert "xxxx" not in caplog.text  # never the record itself


@pytest.mark.parametrize("method", ["put", "get", "delete"])
@pytest.mark.parametrize(
    ("key_id", "response_id"),
    [("k" * 129, "resp_1"), ("key1", "r" * 129), ("key1", "resp_\udcff")],
    ids=["long key_id", "long response_id", "lone surrogate"],
)
async def test_bad_ids_raise_value_error(
    store: ResponseStore, method: str, key_id: str, response_id: str
) -> None:
    args: tuple[Any, ...] = (key_id, response_id)
    if method == "put":
        args += (RECORD, time.time())
    with pytest.raises(ValueError):
        await getattr(store, method)(*args)


async def test_ids_of_exactly_the_limit_are_accepted(store: ResponseStore) -> None:
    key_id, response_id = "k" * 128, "r" * 128
    await store.put(key_id, response_id, RECORD, time.time())
    assert await store.get(key_id, response_id) == RECORD


async def test_reopen_after_close_keeps_the_data(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    await store.put("key1", "resp_1", RECORD, time.time())
    await store.close()
    assert await store.get("key1", "resp_1") is None  # closed: finds nothing, does not raise
    store = await opened(tmp_path)
    assert await store.get("key1", "resp_1") == RECORD
    await store.close()


async def test_database_is_wal_private_and_versioned(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    assert (tmp_path / DB_NAME).stat().st_mode & 0o777 == 0o600


async def test_newer_schema_version_refuses_to_open(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = ResponseStore(tmp_path, settings_of(30))
    with pytest.raises(
        SchemaTooNewError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this gateway"
    ):
        await store.start()
    await store.close()


async def test_garbage_file_finds_nothing_and_drops_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database\n" * 100)
    with caplog.at_level(logging.DEBUG, logger="state.responses"):
        store = await opened(tmp_path)
        assert await store.get("key1", "resp_1") is None
        await store.put("key1", "resp_1", RECORD, time.time())
        assert await store.get("key1", "resp_1") is None
        assert await store.delete("key1", "resp_1") is False
        assert await store.prune() == 0
        await store.close()
    assert [r.levelname for r in caplog.records][:1] == ["WARNING"]
    assert "responses.db" in caplog.records[0].getMessage()


async def test_a_file_corrupted_while_open_finds_nothing(
    store: ResponseStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await store.put("key1", "resp_1", RECORD, time.time())
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE responses SET record = 'not json'")
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="state.responses"):
        assert await store.get("key1", "resp_1") is None
    assert len(caplog.records) == 1
    assert "not json" not in caplog.text


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("response_retention_days: -1", "must not be negative"),
        ("response_retention_days: 3651", "must be at most 3650"),
        ("response_retention_days: ten", "must be an integer"),
    ],
)
def test_retention_setting_is_validated(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_config(text, env={})


def test_retention_setting_accepts_its_range() -> None:
    assert parse_config("", env={}).response_retention_days == 30
    assert parse_config("response_retention_days: 0", env={}).response_retention_days == 0
    assert parse_config("response_retention_days: 3650", env={}).response_retention_days == 3650
