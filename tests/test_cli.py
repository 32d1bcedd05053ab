"""The CLI: keys create/list/revoke and admin set-password, also while the server runs."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appkeys import REGISTRY
from cli import run_cli
from state.config import Config
from state.registry import hash_secret
from state.secrets import verify_password
from state.store import StateFile
from tests.conftest import auth_headers
from tests.test_auth import NEW_PW, basic
from tests.test_state_crash import ROOT, GatewayProcess

ADMIN = basic("admin", NEW_PW)


def cli(config: Config, *args: str) -> int:
    """Run the CLI in-process."""
    return run_cli(config, list(args))


def test_keys_create_list_revoke(tmp_path: Path, capsys: Any) -> None:
    config = Config(data_dir=str(tmp_path))
    assert (
        cli(
            config,
            "keys",
            "create",
            "laptop",
            "--models",
            "llama3.2, qwen3*",
            "--rpm",
            "10",
            "--expires-at",
            "2099-01-01",
            "--notes",
            "mine",
        )
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    secret = out[-1]
    assert secret.startswith("sk-") and len(secret) >= 35
    assert "laptop" in out[0] and "rpm=10" in out[0] and "2099-01-01" in out[0]
    doc, _ = StateFile(tmp_path).read()
    [key] = doc["keys"]
    assert key["models"] == ["llama3.2", "qwen3*"] and key["rpm"] == 10
    assert key["secret_hash"] == hash_secret(secret) and secret not in json.dumps(doc)
    assert cli(config, "keys", "list") == 0
    listing = capsys.readouterr().out
    assert key["id"] in listing and key["masked"] in listing and secret not in listing
    assert "active" in listing and "never" in listing
    assert cli(config, "keys", "revoke", "LAPTOP") == 0  # by unique name, any case
    assert "Revoked" in capsys.readouterr().out
    assert StateFile(tmp_path).read()[0]["keys"] == []
    assert cli(config, "keys", "list") == 0
    assert "No keys." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--models", "*", "--rpm", "0"], "--rpm"),
        (["--models", "*", "--tpm", "lots"], "--tpm"),
        (["--models", "*", "--max-concurrency", "-1"], "--max-concurrency"),
        (["--models", "*", "--expires-at", "soon"], "--expires-at"),
        (["--models", " , "], "--models"),
    ],
)
def test_create_bad_options(tmp_path: Path, capsys: Any, args: list[str], text: str) -> None:
    config = Config(data_dir=str(tmp_path))
    assert cli(config, "keys", "create", "x", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {text}:")
    assert not (tmp_path / "state.json").exists()


def test_duplicate_name_and_unknown_revoke(tmp_path: Path, capsys: Any) -> None:
    config = Config(data_dir=str(tmp_path))
    assert cli(config, "keys", "create", "a", "--models", "*") == 0
    assert cli(config, "keys", "create", "A", "--models", "*") == 2
    assert "already exists" in capsys.readouterr().err
    assert cli(config, "keys", "revoke", "nope") == 2
    assert "No key with id or name 'nope'" in capsys.readouterr().err
    assert len(StateFile(tmp_path).read()[0]["keys"]) == 1


def test_corrupt_state_reported(tmp_path: Path, capsys: Any) -> None:
    config = Config(data_dir=str(tmp_path))
    (tmp_path / "state.json").write_text("{")
    assert cli(config, "keys", "list") == 1
    assert "state.json is unreadable" in capsys.readouterr().err
    assert cli(config, "keys", "create", "a", "--models", "*") == 1
    assert (tmp_path / "state.json").read_text() == "{"  # untouched


def test_set_password_stdin(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    config = Config(data_dir=str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli(config, "admin", "set-password", "--password-stdin") == 2
    assert "at least 8" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("a good password\n"))
    assert cli(config, "admin", "set-password", "--password-stdin") == 0
    stored = StateFile(tmp_path).read()[0]["admin"]["password_hash"]
    assert verify_password("a good password", stored)


def test_set_password_prompts_twice(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import getpass

    config = Config(data_dir=str(tmp_path))
    answers = iter(["first password", "other password"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert cli(config, "admin", "set-password") == 2
    assert "differ" in capsys.readouterr().err
    answers = iter(["same password", "same password"])
    assert cli(config, "admin", "set-password") == 0


def test_gateway_entry_point_dispatches_to_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    run = subprocess.run(
        [
            sys.executable,
            "gateway.py",
            "--config",
            str(cfg),
            "keys",
            "create",
            "ci",
            "--models",
            "*",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    secret = run.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-")
    assert hash_secret(secret) in (tmp_path / "data" / "state.json").read_text()


async def test_cli_and_in_process_server_write_at_once(make_gateway: Any) -> None:
    """API writes and CLI writes interleave; nobody's change is lost, counters included."""
    client = await make_gateway(admin_password=NEW_PW)
    registry = client.app[REGISTRY]
    registry.poll_interval = 0.05
    config = Config(data_dir=registry.config.data_dir)
    api_key = await (
        await client.post("/admin/api/keys", headers=ADMIN, json={"name": "used", "models": ["*"]})
    ).json()
    used = registry.authenticate(api_key["key"])

    def cli_many() -> None:
        for i in range(15):
            assert run_cli(config, ["keys", "create", f"cli{i}", "--models", "*"]) == 0

    async def api_many() -> list[str]:
        ids = []
        for i in range(15):
            resp = await client.post(
                "/admin/api/keys", headers=ADMIN, json={"name": f"api{i}", "models": ["*"]}
            )
            assert resp.status == 201
            ids.append((await resp.json())["id"])
            registry.touch(used)
        return ids

    _, api_ids = await asyncio.gather(asyncio.to_thread(cli_many), api_many())
    await asyncio.sleep(0.3)  # the server notices the CLI's last write
    names = {k.name for k in registry.keys.values()}
    assert names == {"used"} | {f"cli{i}" for i in range(15)} | {f"api{i}" for i in range(15)}
    await client.close()
    doc, _ = StateFile(config.data_path).read()
    assert {k["name"] for k in doc["keys"]} == names
    assert next(k for k in doc["keys"] if k["name"] == "used")["request_count"] == 15


@pytest.mark.slow
async def test_cli_while_server_process_runs(tmp_path: Path, fake_ollama: Any) -> None:
    """The server as a subprocess, the CLI as subprocesses, both editing at the same time."""
    gw = GatewayProcess(tmp_path, ollama_url=fake_ollama.url)
    gw.start()
    try:
        await _edit_together(gw)
    finally:
        gw.stop()


async def _edit_together(gw: GatewayProcess) -> None:
    """The body of test_cli_while_server_process_runs."""
    await gw.ready()
    cfg = ["--config", str(gw.config)]

    def run_cli_process(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "gateway.py", *cfg, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def api_creates(session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        out = []
        for i in range(20):
            async with session.post(
                gw.url + "/admin/api/keys", json={"name": f"api{i}", "models": ["*"]}
            ) as r:
                assert r.status == 201
                out.append(await r.json())
        return out

    def cli_creates() -> list[str]:
        secrets = []
        for i in range(5):
            run = run_cli_process("keys", "create", f"cli{i}", "--models", "llama3.2")
            assert run.returncode == 0, run.stderr
            secrets.append(run.stdout.strip().splitlines()[-1])
        return secrets

    async with aiohttp.ClientSession(headers=ADMIN) as session:
        api_keys, cli_secrets = await asyncio.gather(
            api_creates(session), asyncio.to_thread(cli_creates)
        )
        # A key made by the CLI works on the running server (it reloads within ~1 s).
        for _ in range(50):
            async with session.get(
                gw.url + "/v1/models", headers=auth_headers(cli_secrets[0])
            ) as r:
                if r.status == 200:
                    models = await r.json()
                    break
            await asyncio.sleep(0.1)
        assert [m["id"] for m in models["data"]] == ["llama3.2:latest"]
        # The CLI revokes a key the API made: the server refuses it shortly after.
        victim = api_keys[3]
        run = run_cli_process("keys", "revoke", victim["id"])
        assert run.returncode == 0, run.stderr
        for _ in range(50):
            async with session.get(gw.url + "/v1/models", headers=auth_headers(victim["key"])) as r:
                if r.status == 401:
                    break
            await asyncio.sleep(0.1)
        assert r.status == 401
        # One more API write after the CLI's: it must not resurrect the revoked key.
        async with session.post(
            gw.url + "/admin/api/keys", json={"name": "last", "models": ["*"]}
        ) as r:
            assert r.status == 201
    assert gw.stop() == 0
    doc, _ = StateFile(gw.data).read()
    names = {k["name"] for k in doc["keys"]}
    expected = {f"api{i}" for i in range(20)} - {"api3"} | {f"cli{i}" for i in range(5)} | {"last"}
    assert names == expected
    listing = run_cli_process("keys", "list")
    assert all(n in listing.stdout for n in ("cli4", "api19", "last"))
