"""`python gateway.py` as a real process: startup lines, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import create_app
from state.config import parse_config
from tests.fake_ollama import FakeOllama, Script
from tests.process_helpers import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
SHUTDOWN_TIMEOUT = 6.0
pytestmark = pytest.mark.slow


def _free_port() -> int:
    """A port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """A gateway subprocess and its collected stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.lines)

    async def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until /healthz answers."""
        await wait_healthy(
            self.base, lambda: self.proc.returncode is not None, lambda: self.output, timeout
        )

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit; return its exit code."""
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, 5)
        return code


@pytest.fixture
async def gateway_proc(fake_ollama: FakeOllama, tmp_path: Path) -> AsyncIterator[Any]:
    """Factory: start `python gateway.py --config <tmp>` on a free port against the fake."""
    started: list[Gateway] = []

    async def start(extra_yaml: str = "auth: none\n") -> Gateway:
        port = _free_port()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"host: 127.0.0.1\nport: {port}\nollama_url: {fake_ollama.url}\n"
            f"data_dir: {tmp_path / 'data'}\n"
            f"shutdown_timeout: {SHUTDOWN_TIMEOUT}\n{extra_yaml}"
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "PORT",
                "HOST",
                "OLLAMA_URL",
                "DATA_DIR",
                "ADMIN_PASSWORD",
                "SESSION_SECRET",
                "LOG_FORMAT",
                "LOG_LEVEL",
            )
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "gateway.py"),
            "--config",
            str(config),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        gw = Gateway(proc, port)
        started.append(gw)
        await gw.wait_ready()
        return gw

    yield start
    for gw in started:
        if gw.proc.returncode is None:
            gw.proc.kill()
            await gw.proc.wait()


def _chat_route_exists(tmp_path: Path) -> bool:
    """True once the /v1 chat route is registered in create_app."""
    app = create_app(parse_config("", env={}).replace(data_dir=str(tmp_path / "probe")))
    return any(
        r.method == "POST"
        and r.resource is not None
        and r.resource.canonical == "/v1/chat/completions"
        for r in app.router.routes()
    )


async def test_startup_lines_and_idle_sigterm(gateway_proc: Any) -> None:
    gw = await gateway_proc()
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert await gw.wait_exit(SHUTDOWN_TIMEOUT + 5) == 0
    assert time.monotonic() - started < 3, "an idle gateway must stop at once"
    out = gw.output
    assert f"admin page: http://127.0.0.1:{gw.port}/admin" in out
    assert f"OpenAI API: http://127.0.0.1:{gw.port}/v1" in out
    assert "WARNING" in out and "auth: none" in out
    assert "admin password is the default" in out
    assert "shutting down" in out and "Traceback" not in out


async def test_no_warnings_when_secured(gateway_proc: Any) -> None:
    gw = await gateway_proc("auth: keys\nadmin_password: a-Str0ng-passphrase\n")
    gw.proc.send_signal(signal.SIGTERM)
    assert await gw.wait_exit(SHUTDOWN_TIMEOUT + 5) == 0
    assert "SECURITY" not in gw.output and "WARNING" not in gw.output, gw.output
    assert "a-Str0ng-passphrase" not in gw.output


def test_generated_session_secret_is_redacted(tmp_path: Path) -> None:
    from gateway import _register_stored_secrets
    from logs import redact
    from state.secrets import session_key

    config = parse_config("", env={}).replace(data_dir=str(tmp_path / "data"))
    generated = session_key(None, config.data_path).decode()
    _register_stored_secrets(config)
    assert redact(f"cookie key {generated}!") == "cookie key [REDACTED]!"


async def test_port_in_use_is_a_clear_error(gateway_proc: Any, tmp_path: Path) -> None:
    gw = await gateway_proc("auth: keys\n")
    config = tmp_path / "clash.yaml"
    config.write_text(f"host: 127.0.0.1\nport: {gw.port}\ndata_dir: {tmp_path / 'd2'}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "gateway.py"),
        "--config",
        str(config),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{gw.port}" in out.decode()
    assert "Traceback" not in out.decode()


async def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"host: 127.0.0.1\nport: {_free_port()}\ndata_dir: {tmp_path / 'a-file' / 'data'}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "gateway.py"),
        "--config",
        str(config),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 1, text
    assert "cannot start:" in text and "Check that data_dir" in text
    assert "cannot listen" not in text and "Traceback" not in text


async def test_bad_config_exits_2_naming_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("port: 3000\nlog_format: xml\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "gateway.py"),
        "--config",
        str(config),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "line 2" in err.decode() and "log_format" in err.decode()


async def _read_sse(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The `data:` payloads of an SSE response, as they arrive."""
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data:"):
            yield line[5:].strip()


async def test_sigterm_finishes_requests_and_ends_streams(
    gateway_proc: Any, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    if not _chat_route_exists(tmp_path):
        pytest.skip("POST /v1/chat/completions is not registered yet (api engineer's work)")
    # A real key, made with the CLI before the server starts (auth: keys).
    config = tmp_path / "cli.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    made = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "gateway.py"),
        "--config",
        str(config),
        "keys",
        "create",
        "shutdown-test",
        "--models",
        "*",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(made.communicate(), 30)
    assert made.returncode == 0
    secret = out.decode().strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {secret}"}
    gw = await gateway_proc("auth: keys\n")
    # A stream that would run for 20 s, and a non-streaming answer that takes about 1.5 s.
    fake_ollama.push(
        "chat", Script(lines=[{"message": {"content": f"s{i} "}} for i in range(100)], delay=0.2)
    )
    fake_ollama.push(
        "chat", Script(lines=[{"message": {"content": f"w{i} "}} for i in range(5)], delay=0.3)
    )
    messages = [{"role": "user", "content": "hello"}]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        stream = await session.post(
            gw.base + "/v1/chat/completions",
            json={"model": "llama3.2", "stream": True, "messages": messages},
            headers={"X-Request-ID": "shutdown-stream", **auth},
        )
        assert stream.status == 200
        frames = _read_sse(stream)
        first = json.loads(await anext(frames))
        assert first["object"] == "chat.completion.chunk"

        slow = asyncio.create_task(
            session.post(
                gw.base + "/v1/chat/completions",
                json={"model": "llama3.2", "stream": False, "messages": messages},
                headers={"X-Request-ID": "shutdown-slow", **auth},
            )
        )
        while len(fake_ollama.bodies("/api/chat")) < 2:
            await asyncio.sleep(0.02)
        sigterm_at = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)

        # The open stream ends promptly with an OpenAI-style error frame.
        rest = [f async for f in frames]
        assert time.monotonic() - sigterm_at < SHUTDOWN_TIMEOUT
        errors = [json.loads(f)["error"] for f in rest if f != "[DONE]" and "error" in f]
        assert len(errors) == 1, rest
        assert errors[0]["message"]

        # No new connections are accepted once shutdown has begun.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=3)
        ) as fresh:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with fresh.get(gw.base + "/healthz") as r:
                    await r.read()

        # The in-flight non-streaming request completes normally.
        resp = await slow
        body = await resp.json()
        assert resp.status == 200, body
        assert body["choices"][0]["message"]["content"].split() == [f"w{i}" for i in range(5)]

    assert await gw.wait_exit(SHUTDOWN_TIMEOUT + 5) == 0
    assert time.monotonic() - sigterm_at < SHUTDOWN_TIMEOUT + 2
    assert "Traceback" not in gw.output, gw.output
    # Usage was flushed to disk before exit: both requests are recorded.
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "usage.db")) as db:
        rows = dict(
            db.execute(
                "SELECT request_id, status FROM requests WHERE request_id "
                "IN ('shutdown-stream', 'shutdown-slow')"
            ).fetchall()
        )
    assert rows.get("shutdown-slow") == 200, rows
    assert "shutdown-stream" in rows, rows
    # The key's debounced request counter was saved at shutdown too.
    state = json.loads((tmp_path / "data" / "state.json").read_text())
    (key,) = [k for k in state["keys"] if k["name"] == "shutdown-test"]
    assert key["request_count"] == 2, key


def test_help_without_a_command_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--config PATH" in out and "keys create|list|revoke" in out


def test_help_after_a_command_reaches_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway import main

    config = tmp_path / "c.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(config), "keys", "create", "--help"])
    assert exc.value.code == 0
    assert "usage: gateway.py keys create" in capsys.readouterr().out
