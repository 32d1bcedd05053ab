"""config.yaml hot reload: picked up without a restart; a bad edit is refused, naming the line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from appkeys import REGISTRY, UPSTREAM
from gateway import create_app
from state.config import load_config


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until check() is true."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def start(aiohttp_client: Any, path: Path) -> TestClient:
    """A gateway on config.yaml at `path`, polling it fast."""
    app = create_app(load_config(path, env={}))
    app[REGISTRY].poll_interval = 0.02
    client: TestClient = await aiohttp_client(app)
    return client


def write(path: Path, data_dir: Path, url: str, extra: str = "") -> None:
    """Write a config file."""
    path.write_text(f"data_dir: {data_dir}\nollama_url: {url}\n{extra}")


async def test_changes_apply_without_restart(
    aiohttp_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    cfg, data = tmp_path / "config.yaml", tmp_path / "data"
    write(cfg, data, fake_ollama.url, "reasoning_output: hidden\n")
    client = await start(aiohttp_client, cfg)
    registry = client.app[REGISTRY]
    assert registry.setting("reasoning_output") == "hidden"
    write(
        cfg,
        data,
        "http://127.0.0.1:9",
        "reasoning_output: both\nmodels:\n  llama3.2:\n    overrides: {temperature: 0.1}\n",
    )
    await until(lambda: registry.setting("reasoning_output") == "both")
    assert client.app[UPSTREAM].base_url == "http://127.0.0.1:9"
    assert registry.model_settings("llama3.2").overrides == {"temperature": 0.1}
    # Removing a setting from config.yaml unlocks it (the admin's value applies again).
    write(cfg, data, fake_ollama.url)
    await until(lambda: registry.setting("reasoning_output") == "reasoning_content")
    assert client.app[UPSTREAM].base_url == fake_ollama.url


async def test_invalid_edit_refused_last_good_config_stays(
    aiohttp_client: Any, fake_ollama: Any, tmp_path: Path, caplog: Any
) -> None:
    cfg, data = tmp_path / "config.yaml", tmp_path / "data"
    write(cfg, data, fake_ollama.url, "reasoning_output: hidden\n")
    client = await start(aiohttp_client, cfg)
    registry = client.app[REGISTRY]
    good = registry.config
    with caplog.at_level(logging.ERROR, logger="state.reload"):
        write(cfg, data, fake_ollama.url, "reasoning_output: hidden\nkey_rotation_grace: soon\n")
        await until(lambda: any("line 4" in r.getMessage() for r in caplog.records))
        message = next(r.getMessage() for r in caplog.records if "line 4" in r.getMessage())
        assert str(cfg) in message and "key_rotation_grace" in message
        assert "keeping the last good config" in message
        assert registry.config == good
        caplog.clear()
        write(cfg, data, fake_ollama.url, "reasoning_output: [unclosed\n")
        await until(lambda: any("invalid YAML" in r.getMessage() for r in caplog.records))
    assert registry.config == good
    assert registry.setting("reasoning_output") == "hidden"
    # Fixing the file applies it.
    write(cfg, data, fake_ollama.url, "reasoning_output: inline\n")
    await until(lambda: registry.setting("reasoning_output") == "inline")


async def test_restart_only_settings_warn(
    aiohttp_client: Any, fake_ollama: Any, tmp_path: Path, caplog: Any
) -> None:
    cfg, data = tmp_path / "config.yaml", tmp_path / "data"
    write(cfg, data, fake_ollama.url)
    client = await start(aiohttp_client, cfg)
    with caplog.at_level(logging.WARNING, logger="state.reload"):
        write(cfg, data, fake_ollama.url, "port: 4242\n")
        await until(lambda: any("only after a restart" in r.getMessage() for r in caplog.records))
    assert client.app[REGISTRY].config.port == 4242


async def test_switching_to_auth_none_is_logged_loudly(
    aiohttp_client: Any, fake_ollama: Any, tmp_path: Path, caplog: Any
) -> None:
    cfg, data = tmp_path / "config.yaml", tmp_path / "data"
    write(cfg, data, fake_ollama.url)
    client = await start(aiohttp_client, cfg)
    assert (await client.get("/v1/models")).status == 401
    with caplog.at_level(logging.WARNING, logger="state.reload"):
        write(cfg, data, fake_ollama.url, "auth: none\n")
        await until(lambda: client.app[REGISTRY].setting("auth") == "none")
    assert any("WITHOUT an API key" in r.getMessage() for r in caplog.records)
    assert (await client.get("/v1/models")).status == 200
