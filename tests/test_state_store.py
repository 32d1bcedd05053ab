"""The state file: atomic versioned writes, .bak, corrupt files, migrations, reloads."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from appkeys import CONFIG, REGISTRY
from gateway import create_app
from state import store as store_mod
from state.config import Config
from state.registry import Registry, hash_secret
from state.store import StateFile, StateFileError, empty_state
from tests.conftest import create_test_key


def test_write_read_roundtrip_and_backup(tmp_path: Path) -> None:
    sf = StateFile(tmp_path)
    doc, stamp = sf.read()
    assert doc == empty_state() and stamp is None
    first = {**empty_state(), "settings": {"a": 1}}
    s1 = sf.write(first)
    assert not sf.bak.exists()  # nothing to back up yet
    second = {**empty_state(), "settings": {"a": 2}}
    s2 = sf.write(second)
    assert s1 != s2
    assert sf.read()[0]["settings"] == {"a": 2}
    assert json.loads(sf.bak.read_text())["settings"] == {"a": 1}
    assert stat.S_IMODE(os.stat(sf.path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.bak"]


def test_failed_write_leaves_previous_version(tmp_path: Path, monkeypatch: Any) -> None:
    sf = StateFile(tmp_path)
    sf.write({**empty_state(), "settings": {"v": 1}})

    real_replace = os.replace

    def boom(src: Any, dst: Any) -> None:
        if Path(dst) == sf.path:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(OSError):
        sf.write({**empty_state(), "settings": {"v": 2}})
    monkeypatch.undo()
    assert sf.read()[0]["settings"] == {"v": 1}
    assert json.loads(sf.bak.read_text())["settings"] == {"v": 1}
    assert not list(tmp_path.glob(".state.json.*.tmp"))  # temp file cleaned up


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"keys": []}', "no valid `version`"),
        (b'{"version": "1"}', "no valid `version`"),
        (b'{"version": 1, "keys": {}}', "`keys` is not a list"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_corrupt_file_names_file_and_backup(tmp_path: Path, content: bytes, reason: str) -> None:
    sf = StateFile(tmp_path)
    sf.write(empty_state())
    sf.write(empty_state())  # now a .bak exists
    sf.path.write_bytes(content)
    with pytest.raises(StateFileError) as info:
        sf.read()
    msg = str(info.value)
    assert str(sf.path) in msg and reason in msg
    assert f"cp {sf.bak} {sf.path}" in msg


def test_corrupt_without_backup_says_so(tmp_path: Path) -> None:
    sf = StateFile(tmp_path)
    sf.path.write_text("garbage")
    with pytest.raises(StateFileError, match="no backup"):
        sf.read()


def test_missing_file_with_backup_refuses(tmp_path: Path) -> None:
    sf = StateFile(tmp_path)
    sf.write(empty_state())
    sf.write(empty_state())
    sf.path.unlink()
    with pytest.raises(StateFileError, match="missing but a backup exists"):
        sf.read()


def test_newer_version_refused(tmp_path: Path) -> None:
    sf = StateFile(tmp_path)
    sf.path.write_text(json.dumps({**empty_state(), "version": 99}))
    with pytest.raises(StateFileError, match="newer gateway"):
        sf.read()


def test_migrations_run_in_order(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(store_mod, "VERSION", 3)
    monkeypatch.setattr(
        store_mod,
        "MIGRATIONS",
        {
            1: lambda d: {**d, "settings": {**d.get("settings", {}), "m1": True}},
            2: lambda d: {**d, "settings": {**d["settings"], "m2": d["settings"]["m1"]}},
        },
    )
    sf = StateFile(tmp_path)
    sf.path.write_text(json.dumps({"version": 1, "keys": [], "settings": {}}))
    doc, _ = sf.read()
    assert doc["version"] == 3 and doc["settings"] == {"m1": True, "m2": True}
    assert doc["models"] == {} and doc["admin"] == {}


def test_stale_temp_files_removed(tmp_path: Path) -> None:
    sf = StateFile(tmp_path)
    junk = tmp_path / ".state.json.123.abcd.tmp"
    junk.write_text("half a wri")
    with sf.lock():
        sf.remove_stale_temp_files()
    assert not junk.exists()


async def test_gateway_refuses_to_start_on_corrupt_state(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestServer

    data = tmp_path / "data"
    sf = StateFile(data)
    sf.write(empty_state())
    sf.write(empty_state())
    sf.path.write_text('{"version": 1, "keys": [{"id": 5}]')
    app = create_app(Config(data_dir=str(data), ollama_url="http://127.0.0.1:9"))
    server = TestServer(app)
    with pytest.raises(StateFileError) as info:
        await server.start_server()
    await server.close()
    assert str(sf.path) in str(info.value) and "cp " in str(info.value)
    # A malformed entry (valid JSON) is refused the same way.
    sf.path.write_text('{"version": 1, "keys": [{"id": 5}]}')
    server = TestServer(create_app(Config(data_dir=str(data))))
    with pytest.raises(StateFileError, match="malformed entry"):
        await server.start_server()
    await server.close()


async def test_keys_created_through_sync_api_are_saved(make_gateway: Any) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "sync")  # the sync API the fixtures use
    assert client.app[REGISTRY].authenticate(secret).name == "sync"
    await client.close()
    state = (Path(client.app[CONFIG].data_dir) / "state.json").read_text()
    assert hash_secret(secret) in state


async def test_keys_created_before_start_are_kept(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestServer

    data = tmp_path / "data"
    StateFile(data).write(empty_state())
    app = create_app(Config(data_dir=str(data), ollama_url="http://127.0.0.1:9"))
    _key, secret = app[REGISTRY].create_key("early", ["*"])
    server = TestServer(app)
    await server.start_server()
    assert app[REGISTRY].authenticate(secret).name == "early"
    await server.close()
    assert hash_secret(secret) in (data / "state.json").read_text()


def test_registry_without_writer_mutates_in_memory() -> None:
    reg = Registry(Config())
    key, secret = reg.create_key("a", ["*"])
    assert reg.authenticate(secret).id == key.id


def test_constant_time_comparison_used(monkeypatch: Any) -> None:
    import hmac

    from state import registry as registry_mod

    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(registry_mod.hmac, "compare_digest", spy)
    reg = Registry(Config())
    key, secret = reg.create_key("a", ["*"])
    assert reg.authenticate(secret).id == key.id
    assert (key.secret_hash, hash_secret(secret)) in calls
    with pytest.raises(Exception, match="no such key"):
        reg.authenticate("sk-" + "x" * 43)


async def test_counters_exact_under_concurrent_writes(make_gateway: Any) -> None:
    """Touches racing admin writes, debounced flushes and outside (CLI) writes: none is lost
    and none is counted twice."""
    import asyncio

    from cli import run_cli

    client = await make_gateway()
    registry = client.app[REGISTRY]
    registry.flush_delay = 0.001
    registry.poll_interval = 0.01
    key = registry.authenticate(create_test_key(client.app, "hot"))

    async def touches() -> None:
        for _ in range(300):
            registry.touch(key)
            await asyncio.sleep(0)

    async def admin_writes() -> None:
        for i in range(20):

            def op(state: Any, i: int = i) -> None:
                state.settings["key_rotation_grace"] = i

            await registry.mutate(op)

    def cli_writes() -> None:
        config = Config(data_dir=registry.config.data_dir)
        for i in range(5):
            assert run_cli(config, ["keys", "create", f"c{i}", "--models", "*"]) == 0

    await asyncio.gather(touches(), touches(), admin_writes(), asyncio.to_thread(cli_writes))
    await asyncio.sleep(0.1)
    assert registry.keys[key.id].request_count == 600
    await client.close()
    doc = json.loads((Path(client.app[CONFIG].data_dir) / "state.json").read_text())
    saved = {k["name"]: k for k in doc["keys"]}
    assert saved["hot"]["request_count"] == 600
    assert set(saved) == {"hot"} | {f"c{i}" for i in range(5)}
    assert doc["settings"]["key_rotation_grace"] == 19


async def test_changes_after_shutdown_are_refused(make_gateway: Any) -> None:
    client = await make_gateway()
    registry = client.app[REGISTRY]
    await client.close()

    def op(state: Any) -> None:
        state.settings["key_rotation_grace"] = 1

    with pytest.raises(OSError, match="shutting down"):
        await registry.mutate(op)
    assert "key_rotation_grace" not in registry.settings_state
